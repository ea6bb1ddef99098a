//! Parsers under attack (issue 15 §5): seeded mutation fuzzing of every file format md4-data
//! reads. Requirement for every case: no panic, no hang (2 s per case), no allocation sized by
//! a header's claim (peak RSS stays under 2 GiB), and every rejection names the file.
//! `MD4_FUZZ_CASES` / `MD4_FUZZ_SEED` scale it up (`just fuzz`).

use md4_data::{Detokenizer, Manifest, TokenFile, TokenMeta, idx, wikifil};
use md4_fuzz::Harness;
use std::path::Path;

fn idx_bytes() -> Vec<u8> {
    let mut v = vec![0, 0, 0x08, 3, 0, 0, 0, 2, 0, 0, 0, 3, 0, 0, 0, 4];
    v.extend((0..24).map(|i| i as u8));
    v
}

#[test]
fn idx_reader() {
    let seed = idx_bytes();
    assert_eq!(idx::parse_idx(&seed, "x.idx").unwrap().dims, [2, 3, 4]);
    // Found by this fuzzer: dims whose product overflows u64 (a panic before the fix).
    let huge = [0, 0, 8, 3, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff];
    let e = idx::parse_idx(&huge, "x.idx").unwrap_err().to_string();
    assert!(e.contains("overflow") && e.contains("x.idx"), "{e}");
    let mut h = Harness::new("idx", 3000);
    let mut m = h.mutator();
    for i in 0..h.cases {
        let input = m.mutate(&seed);
        h.case(
            i,
            &input,
            || idx::parse_idx(&input, "x.idx").map(|_| ()).map_err(|e| format!("{e:#}")),
            |e| e.contains("x.idx"),
        );
    }
    eprintln!("{}", h.summary());
}

#[test]
fn token_files_and_their_headers() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.tok");
    let meta = TokenMeta { vocab: 300, item_shape: Some([2, 2, 3]), source_sha256: Some([7; 32]) };
    TokenFile::create_with(&good, &meta, &(0..120u16).collect::<Vec<_>>()).unwrap();
    let seed = std::fs::read(&good).unwrap();
    let path = dir.path().join("fuzzed.tok");
    let mut h = Harness::new("tokenfile", 1500);
    let mut m = h.mutator();
    for i in 0..h.cases {
        let input = m.mutate(&seed);
        std::fs::write(&path, &input).unwrap();
        h.case(
            i,
            &input,
            || {
                let f = TokenFile::open(&path).map_err(|e| format!("{e:#}"))?;
                // Whatever opened must be readable end to end within its vocabulary claim.
                let n = f.len();
                for j in 0..n.min(1000) {
                    let _ = f.get(j);
                }
                Ok(())
            },
            |e| e.contains("fuzzed.tok"),
        );
    }
    eprintln!("{}", h.summary());
}

fn manifests() -> Vec<(String, String)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../datasets");
    let mut out: Vec<(String, String)> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .map(|p| {
            (p.file_name().unwrap().to_string_lossy().into_owned(), std::fs::read_to_string(&p).unwrap())
        })
        .collect();
    out.sort();
    out
}

#[test]
fn dataset_manifests() {
    let seeds = manifests();
    assert!(seeds.len() >= 5);
    for (name, text) in &seeds {
        Manifest::from_yaml(text, name).unwrap_or_else(|e| panic!("{name}: {e:#}"));
    }
    let mut h = Harness::new("manifest", 1500);
    let mut m = h.mutator();
    for i in 0..h.cases {
        let (_, text) = &seeds[m.below(seeds.len())];
        let input = if m.below(4) == 0 {
            String::from_utf8_lossy(&m.mutate(text.as_bytes())).into_owned()
        } else {
            m.mutate_text(text)
        };
        h.case(
            i,
            input.as_bytes(),
            || Manifest::from_yaml(&input, "fuzzed.yaml").map(|_| ()).map_err(|e| format!("{e:#}")),
            |e| e.contains("fuzzed.yaml"),
        );
    }
    eprintln!("{}", h.summary());
}

#[test]
fn detokenizers_and_wikifil_take_any_text() {
    let alphabet: Vec<char> = " \n\t'\"()[]{}@-,.:;!?=°Nsa bc<>&/|#*_0123456789".chars().collect();
    let mut h = Harness::new("detok", 3000);
    let mut m = h.mutator();
    for i in 0..h.cases {
        let text = m.string(&alphabet, 200);
        let detok = [
            Detokenizer::Identity,
            Detokenizer::Wikitext,
            Detokenizer::Ptb,
            Detokenizer::Lm1b,
            Detokenizer::Lambada,
        ][i % 5];
        h.case(
            i,
            text.as_bytes(),
            || {
                let _ = detok.apply(&text);
                Ok(())
            },
            |_| true,
        );
    }
    eprintln!("{}", h.summary());
    let markup =
        b"<page><text>[[a|b]] {{c}} &amp; <ref>x</ref> [http://y z] '''bold''' 12 \xff\xfe</text></page>";
    let mut h = Harness::new("wikifil", 3000);
    let mut m = h.mutator();
    for i in 0..h.cases {
        let input = m.mutate(markup);
        h.case(
            i,
            &input,
            || {
                let out = wikifil::wikifil(&input);
                // The port's contract: only a-z and single spaces come out.
                match out.iter().find(|&&b| !(b.is_ascii_lowercase() || b == b' ')) {
                    Some(b) => Err(format!("wikifil emitted byte {b:#04x}")),
                    None => Ok(()),
                }
            },
            |_| false,
        );
    }
    eprintln!("{}", h.summary());
}
