//! `md4 curves`: a run's training and validation curves against updates and against wall
//! time, with optional reference lines (e.g. a compressor's bits per character).

use anyhow::{Context, Result, bail, ensure};
use clap::Args;
use md4_eval::plot::{Legend, LinePlot, Series};
use std::path::PathBuf;

#[derive(Debug, Args)]
pub struct CurvesArgs {
    /// Run directory (its metrics.jsonl).
    #[arg(long)]
    run_dir: PathBuf,
    /// Output stem: writes <out>-updates.{png,svg,csv} and <out>-wall.{png,svg,csv}.
    #[arg(long)]
    out: PathBuf,
    /// A horizontal reference line NAME=BITS, e.g. "gzip -9=2.498" (repeatable).
    #[arg(long = "reference", value_name = "NAME=BITS")]
    references: Vec<String>,
    /// Unit of the y axis in the labels.
    #[arg(long, default_value = "bits per token")]
    unit: String,
    /// Plot title [default: the run directory].
    #[arg(long)]
    title: Option<String>,
}

fn parse_reference(s: &str) -> Result<(String, f64)> {
    let (name, value) = s.rsplit_once('=').with_context(|| format!("--reference '{s}' is not NAME=BITS"))?;
    let value: f64 =
        value.trim().parse().with_context(|| format!("--reference '{s}': '{value}' is not a number"))?;
    ensure!(value.is_finite(), "--reference '{s}' is not finite");
    Ok((name.trim().to_string(), value))
}

pub fn curves(a: CurvesArgs) -> Result<()> {
    let references = a.references.iter().map(|r| parse_reference(r)).collect::<Result<Vec<_>>>()?;
    let metrics = md4_train::metrics::read_metrics(&a.run_dir.join("metrics.jsonl"))?;
    let points = |kind: &str, key: &str| -> Vec<(f64, f64, f64, f64)> {
        metrics
            .iter()
            .filter(|m| m["kind"] == kind)
            .filter_map(|m| {
                Some((
                    m["step"].as_f64()?,
                    m["wall_s"].as_f64()?,
                    m[key].as_f64()?,
                    m["val_se_bits"].as_f64().unwrap_or(0.0),
                ))
            })
            .collect()
    };
    let train = points("train", "loss_bits");
    let val = points("validation", "val_bits");
    if train.is_empty() && val.is_empty() {
        bail!("{} has no training or validation lines", a.run_dir.join("metrics.jsonl").display());
    }
    let title = a.title.clone().unwrap_or_else(|| a.run_dir.display().to_string());
    for (suffix, x_label, x_of) in [
        ("updates", "updates", (|p: &(f64, f64, f64, f64)| p.0) as fn(&(f64, f64, f64, f64)) -> f64),
        ("wall", "wall time (minutes, training only)", |p| p.1 / 60.0),
    ] {
        let mut series = vec![];
        if !train.is_empty() {
            series.push(Series::new(
                "training loss (batch)",
                train.iter().map(x_of).collect(),
                train.iter().map(|p| p.2).collect(),
            ));
        }
        if !val.is_empty() {
            series.push(
                Series::new(
                    "validation (EMA)",
                    val.iter().map(x_of).collect(),
                    val.iter().map(|p| p.2).collect(),
                )
                .with_err(val.iter().map(|p| p.3).collect()),
            );
        }
        let x_max = train.iter().chain(&val).map(x_of).fold(0.0, f64::max);
        for (name, bits) in &references {
            series.push(Series::new(name, vec![0.0, x_max], vec![*bits, *bits]));
        }
        let mut plot = LinePlot::new(&title, x_label, &a.unit, series);
        plot.legend = Legend::UpperRight;
        let stem = PathBuf::from(format!("{}-{suffix}", a.out.display()));
        let files = plot.write(&stem)?;
        println!("{}", files.png.display());
    }
    if let Some(last) = val.last() {
        println!(
            "last validation: {:.4} ± {:.4} at update {} ({:.1} min of training)",
            last.2,
            last.3,
            last.0,
            last.1 / 60.0
        );
        for (name, bits) in &references {
            match val.iter().find(|p| p.2 < *bits) {
                Some(p) => println!("  below {name} ({bits}) from update {} ({:.1} min)", p.0, p.1 / 60.0),
                None => println!("  never below {name} ({bits})"),
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_parse() {
        assert_eq!(parse_reference("gzip -9=2.498").unwrap(), ("gzip -9".to_string(), 2.498));
        assert_eq!(parse_reference("a=b=1").unwrap(), ("a=b".to_string(), 1.0));
        assert!(parse_reference("gzip").is_err());
        assert!(parse_reference("gzip=x").is_err());
        assert!(parse_reference("gzip=inf").is_err());
    }
}
