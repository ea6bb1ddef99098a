//! What every artifact binary sets up once (issue 16): the run record, the device, the output
//! directory `results/<artifact>/<scale>/` (or `--out`) and the scale, with the card and record
//! writers that need them. A binary builds one [`ArtifactContext`] and hands it to the library.

use crate::artifact::{ArtifactArgs, ArtifactDir, Run, RunRecord, Scale, load_config, workspace_root};
use crate::suite::SuiteConfig;
use anyhow::Result;
use md4_eval::table::PaperTables;
use md4_eval::{DataProtocol, Environment, LikelihoodProtocol, ProtocolCard};
use serde::de::DeserializeOwned;
use std::path::PathBuf;
use std::process::ExitCode;
use tch::Device;

/// An artifact binary's command line: the common flags, then the artifact's own (`A`).
#[derive(clap::Parser, Debug)]
#[command(version)]
struct Cli<A: clap::Args> {
    #[command(flatten)]
    common: ArtifactArgs,
    #[command(flatten)]
    extra: A,
}

/// The flags of an artifact that has none beyond the common ones.
#[derive(clap::Args, Debug)]
pub struct NoFlags {}

/// `--rows`: the flag of the artifacts that train a suite's rows (table2, table5, table3).
#[derive(clap::Args, Debug)]
pub struct RowFlags {
    /// Only these rows (by slug, comma-separated); the table then lists only them.
    #[arg(long, value_delimiter = ',')]
    pub rows: Vec<String>,
}

/// `--steps`: the flag of the finite-T tables (table7, table7-text8).
#[derive(clap::Args, Debug)]
pub struct StepsFlags {
    /// Numbers of steps T of the finite-T bounds.
    #[arg(long, value_delimiter = ',', default_values_t = vec![100i64, 1000, 10000])]
    pub steps: Vec<i64>,
}

/// The whole `main` of an artifact binary: parse the common flags and the artifact's own `A`
/// (`about` is the `--help` description), start the context, run `body`, and exit as `md4` does:
/// 0; or the error on stderr and status 75 when a training run was interrupted (rerun the same
/// command to resume), 1 otherwise.
pub fn main<A: clap::Args>(
    artifact: &str,
    about: &'static str,
    body: impl FnOnce(&ArtifactContext, &A) -> Result<()>,
) -> ExitCode {
    use clap::{CommandFactory, FromArgMatches};
    let matches = Cli::<A>::command().about(about).get_matches();
    let cli = Cli::<A>::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    match single_process(artifact)
        .and_then(|()| ArtifactContext::start(artifact, &cli.common))
        .and_then(|ctx| body(&ctx, &cli.extra))
    {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("Error: {e:?}");
            ExitCode::from(md4_train::guard::exit_code(&e) as u8)
        }
    }
}

/// Artifacts run in one process: started as one of several ranks (torchrun, `md4 launch`,
/// SLURM), every rank would train the same rows and write the same files.
fn single_process(artifact: &str) -> Result<()> {
    if let Some(env) = md4_dist::DistEnv::from_env()?.filter(|e| e.world_size > 1) {
        anyhow::bail!(
            "{artifact} runs in one process, but this is rank {} of {} ({}); start it without a launcher \
             (`md4 launch` / torchrun are for `md4 train` and `md4 eval`)",
            env.rank,
            env.world_size,
            env.launcher
        );
    }
    Ok(())
}

/// One artifact run: its record, device, scale and output directory.
#[derive(Debug)]
pub struct ArtifactContext {
    pub run: Run,
    pub root: PathBuf,
    pub device: Device,
    pub scale: Scale,
    pub dir: ArtifactDir,
}

/// One scored row's protocol card (`cards/<stem>.yaml`): the evaluation data, how the
/// likelihood was estimated, how long the evaluation took, and notes.
#[derive(Clone, Debug)]
pub struct LikelihoodCard<'a> {
    /// The number's name on the card (a row, or a row on a column).
    pub item: String,
    pub stem: String,
    pub data: &'a DataProtocol,
    pub likelihood: LikelihoodProtocol,
    pub wall_seconds: f64,
    pub notes: Vec<String>,
}

impl ArtifactContext {
    /// Start the record, open `--device` and create the output directory.
    pub fn start(artifact: &str, args: &ArtifactArgs) -> Result<Self> {
        let run = Run::start(artifact, args.scale);
        let device = args.device()?;
        let dir = ArtifactDir::resolve(args.out.as_deref(), artifact, args.scale);
        dir.create()?;
        Ok(Self { run, root: workspace_root(), device, scale: args.scale, dir })
    }

    /// `experiments/configs/<artifact>/<scale>.yaml` (this artifact's or another's).
    pub fn config<T: DeserializeOwned>(&self, artifact: &str) -> Result<T> {
        load_config(&self.root, artifact, self.scale)
    }

    /// A training suite's experiment file, every row resolved up front ([`SuiteConfig::load`]).
    pub fn suite(&self, artifact: &str) -> Result<SuiteConfig> {
        SuiteConfig::load(&self.root, artifact, self.scale)
    }

    /// The paper's values, `results/paper.yaml`.
    pub fn paper(&self) -> Result<PaperTables> {
        PaperTables::load(&self.root.join("results/paper.yaml"))
    }

    /// A card for `item` whose number took `wall_seconds`; set the other fields directly.
    pub fn card(&self, item: &str, wall_seconds: f64) -> ProtocolCard {
        let environment = Environment::capture(Some(&self.root), self.device, wall_seconds);
        ProtocolCard::new(&self.run.artifact, item, self.scale.name(), environment)
    }

    /// Write `card` as `<name>` inside the output directory and return its path.
    pub fn write_card(&self, card: &ProtocolCard, name: &str) -> Result<PathBuf> {
        let path = self.dir.file(name);
        card.write(&path)?;
        Ok(path)
    }

    /// Write one scored row's card, `cards/<stem>.yaml`.
    pub fn write_likelihood_card(&self, row: LikelihoodCard) -> Result<PathBuf> {
        let mut card = self.card(&row.item, row.wall_seconds);
        card.data = Some(row.data.clone());
        card.likelihood = Some(row.likelihood);
        card.notes = row.notes;
        self.write_card(&card, &format!("cards/{}.yaml", row.stem))
    }

    /// The summary `card.yaml` ("all rows", the whole run's wall time) with its data and notes.
    pub fn write_summary_card(&self, data: Option<DataProtocol>, notes: Vec<String>) -> Result<PathBuf> {
        let mut card = self.card("all rows", self.run.elapsed());
        card.data = data;
        card.notes = notes;
        self.write_card(&card, "card.yaml")
    }

    /// Write `record.yaml` listing `outputs`.
    pub fn finish(&self, outputs: &[PathBuf]) -> Result<RunRecord> {
        self.run.finish(&self.dir, self.device, outputs)
    }
}
