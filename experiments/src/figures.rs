//! The pure-math figures (spec §10.8): Fig. 1, α_t and the cross-entropy weight |α'_t/(1−α_t)|
//! of five masking schedules (§2.4), and Fig. 2 right, the expected number of tokens revealed
//! per reverse step, N·(α_s − α_t), for the linear and cosine schedules on a uniform grid.
//! Both use the unshifted schedules (ε = 0) of `md4_core::Schedule::exact`.

use crate::context::ArtifactContext;
use anyhow::{Result, ensure};
use md4_core::sampler::Grid;
use md4_core::{MaskingSchedule, Schedule};
use md4_eval::plot::Legend;
use md4_eval::{BarChart, LinePlot, PlotFiles, Series};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// Fig. 1's grid (`experiments/configs/fig1/<scale>.yaml`; identical at every scale).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Fig1Config {
    /// Points of the uniform t grid of each panel.
    pub points: usize,
    /// The α_t panel spans [0, 1].
    /// The weight panel spans [weight_t_min, weight_t_max]: the linear and polynomial weights
    /// diverge at t = 0 and the cosine weight vanishes at t = 1, so a log axis needs margins.
    pub weight_t_min: f64,
    pub weight_t_max: f64,
}

/// The five schedules of Fig. 1 with their legend names, in the paper's order.
pub fn fig1_schedules() -> Vec<(String, MaskingSchedule)> {
    vec![
        ("linear".into(), MaskingSchedule::Linear),
        ("geometric (β_min = 1e-5, β_max = 20)".into(), MaskingSchedule::geometric_fig1()),
        ("cosine".into(), MaskingSchedule::Cosine),
        ("poly2".into(), MaskingSchedule::Polynomial { exponent: 2.0 }),
        ("poly0.5".into(), MaskingSchedule::Polynomial { exponent: 0.5 }),
    ]
}

/// `points` evenly spaced values from `lo` to `hi` inclusive.
pub fn linspace(lo: f64, hi: f64, points: usize) -> Vec<f64> {
    match points {
        0 => Vec::new(),
        1 => vec![lo],
        _ => (0..points).map(|i| lo + (hi - lo) * i as f64 / (points - 1) as f64).collect(),
    }
}

/// The two panels' series: α_t on [0, 1] and |α'_t/(1−α_t)| on the weight interval.
pub fn fig1_series(config: &Fig1Config) -> Result<(Vec<Series>, Vec<Series>)> {
    ensure!(config.points >= 2, "fig1 needs at least 2 grid points");
    ensure!(
        0.0 < config.weight_t_min && config.weight_t_min < config.weight_t_max && config.weight_t_max < 1.0,
        "fig1 weight interval must satisfy 0 < weight_t_min < weight_t_max < 1"
    );
    let t_alpha = linspace(0.0, 1.0, config.points);
    let t_weight = linspace(config.weight_t_min, config.weight_t_max, config.points);
    let mut alpha = Vec::new();
    let mut weight = Vec::new();
    for (name, kind) in fig1_schedules() {
        let schedule = Schedule::exact(kind);
        alpha.push(Series::new(&name, t_alpha.clone(), t_alpha.iter().map(|&t| schedule.alpha(t)).collect()));
        weight.push(Series::new(
            &name,
            t_weight.clone(),
            t_weight.iter().map(|&t| schedule.weight(t).abs()).collect(),
        ));
    }
    Ok((alpha, weight))
}

/// Write `fig1_alpha.{png,svg,csv}` and `fig1_weight.{png,svg,csv}` into `dir`.
pub fn fig1(dir: &Path, config: &Fig1Config) -> Result<Vec<PlotFiles>> {
    let (alpha, weight) = fig1_series(config)?;
    let mut left = LinePlot::new("Masking schedules α_t", "t", "α_t", alpha);
    left.legend = Legend::LowerLeft;
    let mut right =
        LinePlot::new("Cross-entropy weight |α'_t / (1 − α_t)|", "t", "|α'_t / (1 − α_t)|", weight);
    right.log_y = true;
    right.legend = Legend::LowerLeft;
    Ok(vec![left.write(&dir.join("fig1_alpha"))?, right.write(&dir.join("fig1_weight"))?])
}

/// Expected tokens revealed at each reverse step k = 1..=T (k = 1 is the first sampling step,
/// from t = t(T) to s = t(T−1)): N·(α_s − α_t) for N tokens on `grid`.
pub fn expected_reveals(schedule: &Schedule, grid: Grid, steps: i64, n_tokens: f64) -> Vec<f64> {
    (1..=steps)
        .map(|k| {
            let i = steps - k + 1;
            n_tokens * (schedule.alpha(grid.time(i - 1, steps)) - schedule.alpha(grid.time(i, steps)))
        })
        .collect()
}

/// Fig. 2 right: expected tokens revealed per step for the linear and cosine schedules on a
/// uniform grid (the paper: T = 256, N = 12288), written as `fig2_reveal.{png,svg,csv}` in `dir`.
pub fn fig2_reveal(dir: &Path, steps: i64, n_tokens: usize) -> Result<PlotFiles> {
    ensure!(steps > 0 && n_tokens > 0, "fig2 needs positive steps and tokens");
    let x: Vec<f64> = (1..=steps).map(|k| k as f64).collect();
    let series = [("linear", MaskingSchedule::Linear), ("cosine", MaskingSchedule::Cosine)]
        .into_iter()
        .map(|(name, kind)| {
            Series::new(
                name,
                x.clone(),
                expected_reveals(&Schedule::exact(kind), Grid::Uniform, steps, n_tokens as f64),
            )
        })
        .collect();
    let mut chart = BarChart::new(
        &format!("Expected tokens revealed per step (T = {steps}, N = {n_tokens}, uniform grid)"),
        "sampling step",
        "tokens revealed",
        series,
    );
    chart.legend = Legend::UpperLeft;
    chart.write(&dir.join("fig2_reveal"))
}

/// Artifact `fig1`: both panels of Fig. 1 and their card (pure math; the same at every scale).
pub fn fig1_artifact(ctx: &ArtifactContext) -> Result<()> {
    let config: Fig1Config = ctx.config("fig1")?;
    let files = fig1(&ctx.dir.path, &config)?;
    let mut card = ctx.card("alpha_t and |alpha'_t/(1-alpha_t)|", ctx.run.elapsed());
    card.notes = vec![
        "pure math (spec §2.4, Table 4): no data, no model, no sampling; identical at every scale".into(),
        "unshifted schedules (md4_core::Schedule::exact, ε = 0); geometric β̄_min = 1e-5, β̄_max = 20".into(),
        format!("α_t panel: {} uniform points on [0, 1]", config.points),
        format!(
            "weight panel: {} uniform points on [{}, {}] (the linear and poly weights diverge at t = 0, cosine's vanishes at t = 1)",
            config.points, config.weight_t_min, config.weight_t_max
        ),
    ];
    let card = ctx.write_card(&card, "card.yaml")?;
    let mut outputs: Vec<PathBuf> =
        files.iter().flat_map(|f| [f.png.clone(), f.svg.clone(), f.csv.clone()]).collect();
    outputs.push(card);
    ctx.finish(&outputs)?;
    println!("fig1 ({}) written to {}", ctx.scale, ctx.dir.path.display());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use md4_eval::plot::frame_series;
    use md4_eval::table::read_csv;
    use std::f64::consts::FRAC_PI_2;

    fn config() -> Fig1Config {
        Fig1Config { points: 21, weight_t_min: 0.01, weight_t_max: 0.99 }
    }

    #[test]
    fn fig1_series_match_table4_closed_forms() {
        let (alpha, weight) = fig1_series(&config()).unwrap();
        let names: Vec<&str> = alpha.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names[0], "linear");
        assert_eq!(names[2..], ["cosine", "poly2", "poly0.5"]);
        for (i, &t) in weight[0].x.iter().enumerate() {
            // Table 4 weights: linear 1/t, cosine (π/2)·tan(π/2·(1−t)), poly_w w/t.
            assert!((weight[0].y[i] - 1.0 / t).abs() < 1e-9 * weight[0].y[i]);
            let cosine = FRAC_PI_2 * (FRAC_PI_2 * (1.0 - t)).tan();
            assert!((weight[2].y[i] - cosine).abs() < 1e-9 * cosine);
            assert!((weight[3].y[i] - 2.0 / t).abs() < 1e-9 * weight[3].y[i]);
            assert!((weight[4].y[i] - 0.5 / t).abs() < 1e-9 * weight[4].y[i]);
            // Geometric: |α'|/(1−α) from a central difference of α_t = exp(−β̄min^{1−t} β̄max^t).
            let a = |t: f64| (-(1e-5f64).powf(1.0 - t) * 20f64.powf(t)).exp();
            let h = 1e-6;
            let numeric = ((a(t + h) - a(t - h)) / (2.0 * h)).abs() / (1.0 - a(t));
            assert!((weight[1].y[i] - numeric).abs() < 1e-5 * numeric, "t = {t}");
        }
        for s in &alpha {
            assert_eq!((s.x[0], *s.x.last().unwrap()), (0.0, 1.0));
            assert!(s.y.windows(2).all(|w| w[1] <= w[0]), "{} α_t is not decreasing", s.name);
        }
        assert!(fig1_series(&Fig1Config { weight_t_min: 0.0, ..config() }).is_err());
    }

    #[test]
    fn fig1_writes_both_panels() {
        let dir = crate::scratch_dir("fig1");
        let files = fig1(&dir, &config()).unwrap();
        assert_eq!(files[0].png, dir.join("fig1_alpha.png"));
        assert_eq!(files[1].svg, dir.join("fig1_weight.svg"));
        let (_, weight) = fig1_series(&config()).unwrap();
        assert_eq!(frame_series(&read_csv(&files[1].csv).unwrap()).unwrap(), weight);
    }

    #[test]
    fn reveals_sum_to_all_tokens_and_cosine_starts_slow() {
        let (steps, n) = (256, 12288.0);
        let linear = expected_reveals(&Schedule::exact(MaskingSchedule::Linear), Grid::Uniform, steps, n);
        assert!(linear.iter().all(|&r| (r - n / steps as f64).abs() < 1e-9));
        let cosine = expected_reveals(&Schedule::exact(MaskingSchedule::Cosine), Grid::Uniform, steps, n);
        assert!((cosine.iter().sum::<f64>() - n).abs() < 1e-6);
        // α = 1 − cos(π/2·(1−t)) is flat at t = 1: few tokens early, more every step after.
        assert!(cosine.windows(2).all(|w| w[1] > w[0]));
        assert!(cosine[0] < linear[0] && cosine[255] > linear[255]);
        let dir = crate::scratch_dir("fig2");
        let files = fig2_reveal(&dir, 16, 64).unwrap();
        let back = frame_series(&read_csv(&files.csv).unwrap()).unwrap();
        assert_eq!(back.len(), 2);
        assert_eq!(back[0].y.len(), 16);
    }
}
