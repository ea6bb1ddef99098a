//! Tests of the charts: files written at the right size, CSVs that round-trip, bad inputs.

use super::grid::luminance;
use super::*;

#[test]
fn last_fifth_improvement_reads_the_end_of_the_curve() {
    let s = Series::new("c", vec![50.0, 100.0, 150.0, 200.0, 250.0], vec![5.0, 4.0, 3.5, 3.2, 3.04]);
    // 80 % of 250 is 200: (3.2 − 3.04) / 3.2 = 5 %.
    assert!((s.last_fifth_improvement().unwrap() - 0.05).abs() < 1e-12);
    assert_eq!(Series::new("one", vec![1.0], vec![2.0]).last_fifth_improvement(), None);
}

fn png_size(path: &Path) -> (u32, u32) {
    let decoder = png::Decoder::new(std::io::BufReader::new(std::fs::File::open(path).unwrap()));
    let reader = decoder.read_info().unwrap();
    let info = reader.info();
    (info.width, info.height)
}

fn assert_files(files: &PlotFiles, size: (u32, u32)) {
    for path in [&files.png, &files.svg, &files.csv] {
        assert!(std::fs::metadata(path).unwrap().len() > 0, "{} is empty", path.display());
    }
    assert_eq!(png_size(&files.png), size);
    let svg = std::fs::read_to_string(&files.svg).unwrap();
    assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
}

fn two_series() -> Vec<Series> {
    let x: Vec<f64> = (1..=20).map(|i| i as f64 / 20.0).collect();
    vec![
        Series::new("linear", x.clone(), x.iter().map(|t| 1.0 / t).collect()),
        Series::new("poly2", x.clone(), x.iter().map(|t| 2.0 / t).collect())
            .with_err(x.iter().map(|t| 0.1 * t).collect()),
    ]
}

#[test]
fn line_plot_writes_png_svg_and_round_tripping_csv() {
    let dir = tempfile::tempdir().unwrap();
    let mut plot = LinePlot::new("weights", "t", "|α'/(1−α)|", two_series());
    plot.log_y = true;
    plot.size = (640, 400);
    let files = plot.write(&dir.path().join("sub/weights")).unwrap();
    assert_eq!(files.png, dir.path().join("sub/weights.png"));
    assert_files(&files, (640, 400));
    let svg = std::fs::read_to_string(&files.svg).unwrap();
    assert!(svg.contains("linear") && svg.contains("poly2"), "legend labels missing from the svg");
    let back = frame_series(&crate::table::read_csv(&files.csv).unwrap()).unwrap();
    assert_eq!(back, plot.series);
}

#[test]
fn linear_scale_line_plot_and_bad_inputs() {
    let dir = tempfile::tempdir().unwrap();
    let plot = LinePlot::new("alpha", "t", "α", two_series());
    assert_files(&plot.write(&dir.path().join("alpha")).unwrap(), (800, 560));
    let mut log = LinePlot::new("bad", "t", "y", vec![Series::new("zero", vec![0.0, 1.0], vec![0.0, 1.0])]);
    log.log_y = true;
    assert!(log.write(&dir.path().join("bad")).unwrap_err().to_string().contains("positive"));
    let ragged = LinePlot::new("ragged", "t", "y", vec![Series::new("r", vec![0.0, 1.0], vec![1.0])]);
    assert!(ragged.write(&dir.path().join("ragged")).is_err());
}

#[test]
fn bar_chart_writes_all_files() {
    let dir = tempfile::tempdir().unwrap();
    let x: Vec<f64> = (1..=16).map(f64::from).collect();
    let series = vec![
        Series::new("linear", x.clone(), vec![4.0; 16]),
        Series::new("cosine", x.clone(), x.iter().map(|s| s / 2.0).collect()),
    ];
    let chart = BarChart::new("revealed", "step", "tokens", series);
    let files = chart.write(&dir.path().join("bars")).unwrap();
    assert_files(&files, (900, 520));
    let back = frame_series(&crate::table::read_csv(&files.csv).unwrap()).unwrap();
    assert_eq!(back, chart.series);
}

#[test]
fn token_grid_writes_all_files() {
    let dir = tempfile::tempdir().unwrap();
    let text = "the quick brown fox";
    let tokens: Vec<String> =
        text.chars().map(|c| if c == ' ' { "·".into() } else { c.to_string() }).collect();
    let steps: Vec<usize> = (0..tokens.len()).map(|i| 1 + (i * 7) % 10).collect();
    let grid = TokenGrid::new("unmasking", tokens.clone(), steps.clone(), 10, 8);
    let files = grid.write(&dir.path().join("grid")).unwrap();
    assert_files(&files, grid.size());
    let df = crate::table::read_csv(&files.csv).unwrap();
    let got_tokens: Vec<String> =
        df.column("token").unwrap().str().unwrap().iter().map(|t| t.unwrap().to_string()).collect();
    assert_eq!(got_tokens, tokens);
    let got_steps: Vec<i64> = df.column("step").unwrap().i64().unwrap().iter().map(Option::unwrap).collect();
    assert_eq!(got_steps, steps.iter().map(|&s| s as i64).collect::<Vec<_>>());
    let bad = TokenGrid::new("bad", tokens, vec![11; steps.len()], 10, 8);
    assert!(bad.write(&dir.path().join("bad")).unwrap_err().to_string().contains("outside"));
}

#[test]
fn axis_numbers_are_short() {
    let values = [1e-6, 9.999999e-5, 0.001, 0.0099999, 0.5, 1.0, 15000.0, 2.5e6, 0.0, -0.25];
    let labels: Vec<String> = values.iter().map(axis_number).collect();
    assert_eq!(labels, ["1e-6", "1e-4", "0.001", "0.01", "0.5", "1", "15000", "2.5e6", "0", "-0.25"]);
}

#[test]
fn step_colors_run_from_dark_to_light() {
    assert_eq!(step_color(1, 100), RGBColor(68, 1, 84));
    assert_eq!(step_color(100, 100), RGBColor(253, 231, 37));
    let lum: Vec<f64> = (1..=100).map(|s| luminance(step_color(s, 100))).collect();
    assert!(lum.windows(2).all(|w| w[1] >= w[0] - 1e-9), "luminance is not monotone");
}
