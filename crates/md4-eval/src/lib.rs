//! Evaluation for md4-rs (spec §3.5, §10, §11): likelihoods with K Monte-Carlo passes and
//! standard errors, the one place where nats become reported units, protocol cards beside
//! every number, tables with the paper's value beside ours, plots with their data, and
//! image-sample grids, and reference yardsticks (unigram, gzip, bzip2, xz) on the scored tokens.
//!
//! The crate depends only on `md4-core`: models, data and training hand it closures and token
//! sequences, so everything here is testable with toy closures.

pub mod card;
pub mod images;
pub mod likelihood;
pub mod matrix;
pub mod plot;
pub mod provenance;
pub mod table;
pub mod units;
pub mod yardsticks;

pub use card::{
    Bound, DataProtocol, Environment, KEYED_TIME_SAMPLING, LikelihoodProtocol, ProtocolCard, SamplingProtocol,
};
pub use images::{ImageGrid, ImagePanels};
pub use likelihood::{
    EvalConfig, EvalResult, EvalSequences, FlatChunks, PairedDifference, Unigram, evaluate,
    paired_difference, tokens_sha256, unigram,
};
pub use matrix::{Cell, Matrix, MatrixColumn, MatrixRow};
pub use plot::{BarChart, LinePlot, PlotFiles, Series, TokenGrid};
pub use table::{Delta, Estimate, PaperTables, PaperValue, Row, Table};
pub use units::Unit;
pub use yardsticks::{Compressor, References, Yardstick, compressor_yardsticks, unigram_yardstick};
