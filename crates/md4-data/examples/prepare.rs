//! Prepares data sets from their manifests (the library side of `md4 data`, spec §9), for use
//! before the CLI exists: `cargo run -p md4-data --example prepare -- NAME... [--from DIR]
//! [--offline]`, or `--list`.

use std::path::PathBuf;

use anyhow::Result;
use md4_data::{PrepareOptions, list_datasets, prepare};

fn main() -> Result<()> {
    let mut names = Vec::new();
    let mut opts = PrepareOptions { progress: true, ..Default::default() };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--list" => {
                for m in list_datasets()? {
                    println!("{:<20} {}", m.name, m.fidelity);
                }
                return Ok(());
            }
            "--offline" => opts.offline = true,
            "--from" => opts.from_dir = args.next().map(PathBuf::from),
            _ => names.push(a),
        }
    }
    for name in names {
        let start = std::time::Instant::now();
        let p = prepare(&name, &opts)?;
        println!("{name}: {} ({:.1} s)", p.dir.display(), start.elapsed().as_secs_f64());
        for (split, info) in &p.splits {
            println!(
                "  {split:<10} tokens {:>10} items {:>8} dropped {:>5} sha256 {} md5 {}",
                info.tokens,
                info.items.map(|i| i.to_string()).unwrap_or_default(),
                info.dropped,
                info.sha256,
                info.raw_md5.as_deref().unwrap_or("-")
            );
        }
    }
    Ok(())
}
