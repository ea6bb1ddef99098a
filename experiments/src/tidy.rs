//! The artifact registry and a tidy check of the cheap conventions (style guide, "a tidy test
//! can enforce the cheap rules"): every artifact has a binary and its per-scale configs, every
//! binary is registered, every source file opens with a `//!` header, configs hold no absolute
//! paths, `results/` holds only registered artifacts and scales, and the README (once it
//! exists) lists every artifact.

use crate::artifact::Scale;
use std::path::Path;

/// One reproducible artifact.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Artifact {
    /// Directory name under `results/` and `experiments/configs/`, and `just reproduce` argument.
    pub name: &'static str,
    /// Binary name (`experiments/src/bin/<binary>.rs`).
    pub binary: &'static str,
    /// Whether `experiments/configs/<name>/{smoke,small,paper}.yaml` must exist.
    pub configs: bool,
    pub description: &'static str,
}

/// Every artifact binary. Add a line here with each new binary; the tidy test fails otherwise.
pub const ARTIFACTS: &[Artifact] = &[
    Artifact {
        name: "fig1",
        binary: "fig1",
        configs: true,
        description: "α_t and the cross-entropy weight for five masking schedules (spec §2.4, §10.8)",
    },
    Artifact {
        name: "table2",
        binary: "table2",
        configs: true,
        description: "text8 bits per character: MD4, GenMD4, SEDD, D3PM, AR (spec §10.2)",
    },
    Artifact {
        name: "table7-text8",
        binary: "table7_text8",
        configs: false,
        description: "finite-T versus continuous bounds of table2's MD4 model in BPC (spec §10.7, on text8)",
    },
    Artifact {
        name: "table5",
        binary: "table5",
        configs: true,
        description: "held-out perplexity of the training corpus: MD4, GenMD4, SEDD, AR (spec §10.5)",
    },
    Artifact {
        name: "table1",
        binary: "table1",
        configs: true,
        description: "zero-shot perplexity of table5's models, one column per evaluation set (spec §10.1, §11)",
    },
    Artifact {
        name: "table7",
        binary: "table7",
        configs: false,
        description: "finite-T versus continuous bounds of table5's MD4 on table1's zero-shot sets (spec §10.7)",
    },
    Artifact {
        name: "fig2",
        binary: "fig2",
        configs: false,
        description: "tokens revealed per step, and a sample's unmasking order (spec §10.8)",
    },
    Artifact {
        name: "fig-genmd4-w",
        binary: "fig_genmd4_w",
        configs: false,
        description: "GenMD4's learned per-character exponents w (spec §4)",
    },
    Artifact {
        name: "fig4",
        binary: "fig4",
        configs: false,
        description: "validation perplexity against training steps for table5's rows (spec §10.8)",
    },
    Artifact {
        name: "fig8",
        binary: "fig8",
        configs: true,
        description: "generative perplexity vs sampling steps with unigram entropy, calls, wall time (spec §11.4)",
    },
    Artifact {
        name: "infill",
        binary: "infill",
        configs: false,
        description: "infilling between a fixed prefix and suffix with the span's likelihood bound (spec §5.4)",
    },
    Artifact {
        name: "table3",
        binary: "table3",
        configs: true,
        description: "bits per dimension: MD4, Campbell et al. absorb, AR over sub-pixels; foolbox loading checks (spec §10.3)",
    },
    Artifact {
        name: "image-samples",
        binary: "image_samples",
        configs: true,
        description: "unconditional image samples: linear schedule (uniform, cosine grid) vs cosine schedule; Table 6 protocol (spec §10.6)",
    },
    Artifact {
        name: "ablate-schedules",
        binary: "ablate_schedules",
        configs: false,
        description: "MD4 trained with each masking schedule: test BPC and validation curves",
    },
];

/// The most lines an artifact binary may have: a header, its flags and one library call.
pub const MAX_BINARY_LINES: usize = 60;
/// The most lines a library source file may have before it holds more than one idea.
pub const MAX_SOURCE_LINES: usize = 600;

/// Problems with the conventions in the workspace at `root`, one line each (empty: tidy).
pub fn tidy_check(root: &Path) -> Vec<String> {
    tidy_check_with(root, ARTIFACTS)
}

/// [`tidy_check`] against a given registry.
pub fn tidy_check_with(root: &Path, artifacts: &[Artifact]) -> Vec<String> {
    let mut problems = Vec::new();
    let experiments = root.join("experiments");
    for artifact in artifacts {
        let bin = experiments.join("src/bin").join(format!("{}.rs", artifact.binary));
        if !bin.is_file() {
            problems.push(format!("artifact {}: binary {} is missing", artifact.name, bin.display()));
        }
        if artifact.configs {
            for scale in Scale::ALL {
                let config = crate::artifact::config_path(root, artifact.name, scale);
                if !config.is_file() {
                    problems.push(format!(
                        "artifact {}: config {} is missing",
                        artifact.name,
                        config.display()
                    ));
                }
            }
        }
    }
    for bin in files_with_extension(&experiments.join("src/bin"), "rs") {
        let stem = bin.file_stem().map(|s| s.to_string_lossy().to_string()).unwrap_or_default();
        if !artifacts.iter().any(|a| a.binary == stem) {
            problems.push(format!(
                "binary {} is not in the artifact registry (experiments/src/tidy.rs)",
                bin.display()
            ));
        }
    }
    for source in files_with_extension(&experiments.join("src"), "rs") {
        let text = std::fs::read_to_string(&source).unwrap_or_default();
        if !text.starts_with("//!") {
            problems.push(format!("{} does not open with a //! header", source.display()));
        }
    }
    problems.extend(size_problems(root));
    for config in files_with_extension(&experiments.join("configs"), "yaml") {
        let text = std::fs::read_to_string(&config).unwrap_or_default();
        for (number, line) in text.lines().enumerate() {
            if let Some(value) = line.split_once(':').map(|(_, v)| v.trim().trim_matches(['\'', '"']))
                && (value.starts_with('/') || value.starts_with('~'))
            {
                problems.push(format!("{}:{}: absolute path '{value}'", config.display(), number + 1));
            }
        }
    }
    if let Ok(entries) = std::fs::read_dir(root.join("results")) {
        for entry in entries.flatten().filter(|e| e.path().is_dir()) {
            let name = entry.file_name().to_string_lossy().to_string();
            if !artifacts.iter().any(|a| a.name == name) {
                problems.push(format!("results/{name} is not a registered artifact"));
                continue;
            }
            for sub in std::fs::read_dir(entry.path()).into_iter().flatten().flatten() {
                let scale = sub.file_name().to_string_lossy().to_string();
                if sub.path().is_dir() && scale.parse::<Scale>().is_err() {
                    problems.push(format!("results/{name}/{scale} is not a scale (smoke, small, paper)"));
                }
            }
        }
    }
    if let Ok(readme) = std::fs::read_to_string(root.join("README.md")) {
        for artifact in artifacts.iter().filter(|a| !readme.contains(a.name)) {
            problems.push(format!("README.md does not mention artifact {}", artifact.name));
        }
    }
    problems
}

/// Binaries longer than [`MAX_BINARY_LINES`] and library sources (`crates/*/src`,
/// `experiments/src` outside `bin/`) longer than [`MAX_SOURCE_LINES`].
fn size_problems(root: &Path) -> Vec<String> {
    let lines = |path: &Path| std::fs::read_to_string(path).map_or(0, |t| t.lines().count());
    let bins = root.join("experiments/src/bin");
    let mut problems = Vec::new();
    for bin in files_with_extension(&bins, "rs") {
        let n = lines(&bin);
        if n > MAX_BINARY_LINES {
            problems.push(format!(
                "{} has {n} lines; an artifact binary is its flags and one library call (at most {MAX_BINARY_LINES})",
                bin.display()
            ));
        }
    }
    let mut sources = files_with_extension(&root.join("experiments/src"), "rs");
    sources.retain(|p| !p.starts_with(&bins));
    for krate in std::fs::read_dir(root.join("crates")).into_iter().flatten().flatten() {
        sources.extend(files_with_extension(&krate.path().join("src"), "rs"));
    }
    for source in sources {
        let n = lines(&source);
        if n > MAX_SOURCE_LINES {
            problems.push(format!(
                "{} has {n} lines (at most {MAX_SOURCE_LINES}): split it by idea",
                source.display()
            ));
        }
    }
    problems
}

/// Files under `dir` (recursively) ending in `.<ext>`, sorted.
fn files_with_extension(dir: &Path, ext: &str) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == ext) {
                out.push(path);
            }
        }
    }
    out.sort();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const REGISTRY: &[Artifact] =
        &[Artifact { name: "figx", binary: "figx", configs: true, description: "test" }];

    fn write(root: &Path, path: &str, text: &str) {
        let path = root.join(path);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }

    fn tidy_tree(name: &str) -> crate::ScratchDir {
        let root = crate::scratch_dir(name);
        write(&root, "experiments/src/lib.rs", "//! lib\n");
        write(&root, "experiments/src/bin/figx.rs", "//! figx\nfn main() {}\n");
        for scale in Scale::ALL {
            write(&root, &format!("experiments/configs/figx/{scale}.yaml"), "points: 3\nout: results/figx\n");
        }
        std::fs::create_dir_all(root.join("results/figx/small")).unwrap();
        write(&root, "results/paper.yaml", "tables: {}\n");
        root
    }

    #[test]
    fn a_tidy_tree_has_no_problems() {
        let root = tidy_tree("clean");
        assert_eq!(tidy_check_with(&root, REGISTRY), Vec::<String>::new());
    }

    #[test]
    fn each_rule_is_enforced() {
        let cases: &[(&str, &dyn Fn(&Path), &str)] = &[
            (
                "missing-bin",
                &|r| std::fs::remove_file(r.join("experiments/src/bin/figx.rs")).unwrap(),
                "binary",
            ),
            (
                "missing-config",
                &|r| std::fs::remove_file(r.join("experiments/configs/figx/paper.yaml")).unwrap(),
                "paper.yaml is missing",
            ),
            (
                "stray-bin",
                &|r| write(r, "experiments/src/bin/figy.rs", "//! y\n"),
                "not in the artifact registry",
            ),
            ("header", &|r| write(r, "experiments/src/extra.rs", "use std::fs;\n"), "//! header"),
            (
                "absolute",
                &|r| write(r, "experiments/configs/figx/small.yaml", "data: '/home/me/data'\n"),
                "absolute path",
            ),
            (
                "stray-result",
                &|r| std::fs::create_dir_all(r.join("results/figz/small")).unwrap(),
                "results/figz",
            ),
            (
                "bad-scale",
                &|r| std::fs::create_dir_all(r.join("results/figx/huge")).unwrap(),
                "results/figx/huge",
            ),
            ("readme", &|r| write(r, "README.md", "# md4-rs\n"), "README.md does not mention artifact figx"),
            (
                "long-bin",
                &|r| write(r, "experiments/src/bin/figx.rs", &format!("//! figx\n{}", "\n".repeat(60))),
                "an artifact binary is its flags and one library call",
            ),
            (
                "long-source",
                &|r| write(r, "crates/md4-x/src/lib.rs", &format!("//! x\n{}", "\n".repeat(600))),
                "crates/md4-x/src/lib.rs has 601 lines",
            ),
        ];
        for (name, break_it, expected) in cases {
            let root = tidy_tree(name);
            break_it(&root);
            let problems = tidy_check_with(&root, REGISTRY);
            assert_eq!(problems.len(), 1, "{name}: {problems:?}");
            assert!(problems[0].contains(expected), "{name}: {problems:?}");
        }
    }

    #[test]
    fn this_workspace_is_tidy() {
        let problems = tidy_check(&crate::workspace_root());
        assert!(problems.is_empty(), "{}", problems.join("\n"));
    }
}
