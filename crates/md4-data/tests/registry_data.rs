//! Checks on the real registry data sets (spec §9, §11): they run on what `md4 data NAME` prepared
//! in `data_root()` (preparing offline from cached downloads when needed). Without the data a test
//! prints why and passes, unless `MD4_REQUIRE_DATA=1` (set in CI after `md4 data`) makes it fail.

use md4_data::{Blocks, Chunks, PrepareOptions, Prepared, RandomCrops, gpt2_decode, prepare, text8_decode};

fn prepared(name: &str) -> Option<Prepared> {
    let opts = PrepareOptions { offline: true, ..Default::default() };
    match prepare(name, &opts) {
        Ok(p) => Some(p),
        Err(e) if std::env::var("MD4_REQUIRE_DATA").is_ok_and(|v| v == "1") => {
            panic!("{name} is required but not prepared: {e:#}")
        }
        Err(e) => {
            eprintln!("skipping: {name} is not prepared (run `md4 data {name}`): {e:#}");
            None
        }
    }
}

/// PTB: the md5 of each extracted split equals the published sums of Mikolov's files, and the
/// zero-shot protocol turns the test split into 91,135 GPT-2 tokens = 88 blocks of 1024 with 1,023
/// tokens dropped. The same figures (and the payload sha256 pinned in datasets/ptb.yaml) came out of
/// an independent run with npm gpt-3-encoder 1.1.4's BPE and a JavaScript copy of the PTB rules.
#[test]
fn ptb_matches_published_md5s_and_the_recorded_block_count() {
    let Some(p) = prepared("ptb") else { return };
    let md5 = |file: &str| md4_data::cache::md5_hex(&std::fs::read(p.dir.join(file)).unwrap());
    assert_eq!(md5("ptb.train.txt"), "f26c4b92c5fdc7b3f8c7cdcb991d8420");
    assert_eq!(md5("ptb.valid.txt"), "aa0affc06ff7c36e977d7cd49e3839bf");
    assert_eq!(md5("ptb.test.txt"), "8b80168b89c18661a38ef683c0dc3721");
    let test = p.open("test").unwrap();
    assert_eq!((test.len(), test.num_items(), p.splits["test"].dropped), (90_112, Some(88), 1_023));
    assert_eq!(test.len() + p.splits["test"].dropped, 91_135);
    let head: Vec<u32> = test.to_vec_u16(0, 8).into_iter().map(u32::from).collect();
    assert!(gpt2_decode(&head).unwrap().starts_with("no it wasn't black monday"), "{:?}", gpt2_decode(&head));
    let blocks = Blocks::items(test).unwrap();
    assert_eq!(blocks.num_blocks(), 88);
}

/// text8-wiki: the Rust wikifil output equals the original Perl filter's (checked by sha256 during
/// preparation), the alphabet is text8's, and the 90/5/5 split covers all 3,085,829 characters.
#[test]
fn text8_wiki_is_wikifil_output_split_90_5_5() {
    let Some(p) = prepared("text8-wiki") else { return };
    let text = std::fs::read(p.dir.join("wiki.text8")).unwrap();
    assert_eq!(text.len(), 3_085_829);
    assert!(text.starts_with(b" anarchism is a political philosophy that advocates self governed societies"));
    let (train, valid, test) =
        (p.open("train").unwrap(), p.open("validation").unwrap(), p.open("test").unwrap());
    assert_eq!(train.len() + valid.len() + test.len(), text.len() as u64);
    assert_eq!(train.len(), text.len() as u64 * 90 / 100);
    let first: Vec<u8> = train.payload()[..10].to_vec();
    assert_eq!(text8_decode(&first), " anarchism");
    let crops = RandomCrops::new(train, 256).unwrap();
    assert_eq!(crops.batch(0, 0, 4, tch::Device::Cpu).size(), [4, 256]);
    let chunks = Chunks::new(test, 256).unwrap();
    assert_eq!(chunks.num_chunks() * 256 + chunks.dropped_tokens(), 154_292);
}

/// wiki-proxy: the fixture's articles in WikiText's raw layout; every test row is a heading, a
/// blank row or tokenised prose, and the WikiText detokenizer turns the rows back into plain
/// text (no `@-@` left); the test split is 37 blocks of 1024 GPT-2 tokens.
#[test]
fn wiki_proxy_is_wikitext_layout_in_blocks() {
    let Some(p) = prepared("wiki-proxy") else { return };
    let raw = std::fs::read_to_string(p.dir.join("wiki.test.raw")).unwrap();
    let rows: Vec<&str> = raw.split('\n').collect();
    assert!(rows[0].starts_with(" = ") && rows[0].ends_with(" = "), "{:?}", rows[0]);
    assert!(rows.iter().any(|r| r.starts_with(" = = ")));
    assert!(raw.contains(" @-@ ") && raw.contains(" , "));
    assert!(rows.iter().all(|r| r.starts_with(' ')), "every WikiText row starts with a space");
    let detok = md4_data::detok::wikitext_detokenize(&raw);
    assert!(!detok.contains(" @-@ ") && !detok.contains(" , "));
    let test = p.open("test").unwrap();
    assert_eq!((test.len(), test.num_items()), (37 * 1024, Some(37)));
    let head: Vec<u32> = test.to_vec_u16(0, 6).into_iter().map(u32::from).collect();
    assert!(gpt2_decode(&head).unwrap().starts_with(" = Agnostida ="), "{:?}", gpt2_decode(&head));
}

/// Fashion-MNIST: 60k/10k images, the published first training labels, 6,000 per class.
#[test]
fn fashion_mnist_images_and_labels() {
    let Some(p) = prepared("fashion-mnist") else { return };
    let train = p.open("train").unwrap();
    assert_eq!((train.num_items(), train.item_shape()), (Some(60_000), Some([28, 28, 1])));
    let labels = p.labels("train").unwrap();
    assert_eq!(labels.to_vec_u16(0, 10), [9, 0, 0, 3, 0, 2, 7, 2, 5, 5]);
    let mut per_class = [0u32; 10];
    for i in 0..labels.len() {
        per_class[labels.get(i) as usize] += 1;
    }
    assert_eq!(per_class, [6_000; 10]);
    assert_eq!(p.open("test").unwrap().num_items(), Some(10_000));
    assert_eq!(p.splits["test"].raw_md5.as_deref(), Some("8181f5470baa50b63fa0f6fddb340f0a"));
}

/// foolbox CIFAR-10: the first 20 test images with their published labels; the pixels equal an
/// independent pure-Python PNG decode (sha256 pinned in the manifest) and image 0 starts with the
/// well-known (158, 112, 49).
#[test]
fn foolbox_cifar10_and_imagenet64() {
    let Some(p) = prepared("cifar10-foolbox") else { return };
    let imgs = p.open("test").unwrap();
    assert_eq!((imgs.num_items(), imgs.item_shape()), (Some(20), Some([32, 32, 3])));
    assert_eq!(imgs.to_vec_u16(0, 3), [158, 112, 49]);
    let labels = p.labels("test").unwrap().to_vec_u16(0, 20);
    assert_eq!(labels, [3, 8, 8, 0, 6, 6, 1, 6, 3, 1, 0, 9, 5, 7, 9, 8, 5, 7, 8, 6]);
    let Some(p) = prepared("imagenet64-foolbox") else { return };
    let imgs = p.open("test").unwrap();
    assert_eq!((imgs.num_items(), imgs.item_shape()), (Some(20), Some([64, 64, 3])));
    assert_eq!(p.labels("test").unwrap().to_vec_u16(0, 3), [243, 559, 438]);
    let batch = Blocks::items(imgs).unwrap().batch(0, 0, 2, tch::Device::Cpu);
    assert_eq!(batch.size(), [2, 64 * 64 * 3]);
}
