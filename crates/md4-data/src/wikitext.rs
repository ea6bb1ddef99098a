//! WikiText-style raw text from a MediaWiki XML export (the zero-shot WikiText proxy of
//! `datasets/wiki-proxy.yaml`; spec §11.1, data-sources.md §2.2).
//!
//! No registry package ships WikiText-2/103, so the gensim wheel's real Wikipedia fixture is
//! turned into text laid out as WikiText's raw files are: one row per line, ` = Title = ` and
//! ` = = Section = = ` heading rows, paragraphs tokenised the way WikiText was (spaces around
//! punctuation, `@-@` inside hyphenated words, `@,@` and `@.@` inside numbers, `'s` split off)
//! and blank rows between paragraphs. The zero-shot pipeline then applies SEDD's WikiText
//! detokenizer to each row, exactly as for the real data set. Lists, tables, templates,
//! references, files and categories are dropped, as WikiText's builders dropped them. What
//! differs from WikiText: the articles (WikiText took Good and Featured articles; these are the
//! dump's first pages) and the tokeniser (this is a small rule set, not Moses).

use regex::Regex;
use std::sync::LazyLock;

/// One article: its title and its rows (without trailing newlines).
#[derive(Clone, Debug, PartialEq)]
pub struct Article {
    pub title: String,
    pub rows: Vec<String>,
}

/// The articles (namespace 0, not redirects) of a MediaWiki XML export, in dump order, each as
/// WikiText-style rows; articles that keep no paragraph are left out.
pub fn wikitext_articles(xml: &str) -> Vec<Article> {
    let mut out = Vec::new();
    for page in xml.split("<page>").skip(1) {
        let page = page.split("</page>").next().unwrap_or("");
        let (Some(title), Some(ns)) = (between(page, "<title>", "</title>"), between(page, "<ns>", "</ns>"))
        else {
            continue;
        };
        if ns.trim() != "0" || page.contains("<redirect") {
            continue;
        }
        let Some(start) = page.find("<text") else { continue };
        let body = &page[start..];
        let Some(open_end) = body.find('>') else { continue };
        let body = &body[open_end + 1..];
        let body = body.split("</text>").next().unwrap_or("");
        let title = unescape_xml(title);
        let rows = article_rows(&title, &unescape_xml(body));
        if rows.iter().any(|r| !r.trim().is_empty() && !r.trim_start().starts_with('=')) {
            out.push(Article { title, rows });
        }
    }
    out
}

fn between<'a>(s: &'a str, open: &str, close: &str) -> Option<&'a str> {
    let a = s.find(open)? + open.len();
    let b = s[a..].find(close)? + a;
    Some(&s[a..b])
}

/// XML character references and the five predefined entities (the export escapes the wikitext
/// once); `&amp;` last so that `&amp;lt;` becomes `&lt;` (an HTML entity of the wikitext,
/// decoded by [`strip_markup`]).
pub fn unescape_xml(s: &str) -> String {
    s.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&apos;", "'")
        .replace("&amp;", "&")
}

/// The rows of one article: a title heading, a blank row, then every heading and paragraph of
/// the markup each followed by a blank row (WikiText's layout).
pub fn article_rows(title: &str, markup: &str) -> Vec<String> {
    let text = strip_markup(markup);
    let mut rows = vec![format!(" = {} = ", tokenize(title)), " ".to_string()];
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        if let Some((level, heading)) = heading(line) {
            let marks = vec!["="; level].join(" ");
            let heading = tokenize(heading);
            if heading.is_empty() {
                continue;
            }
            rows.push(format!(" {marks} {heading} {marks} "));
            rows.push(" ".to_string());
            continue;
        }
        // Lists, indents, definition lists and table debris are not prose.
        if line.starts_with(['*', '#', ':', ';', '|', '!', '{', '}']) {
            continue;
        }
        let tokens = tokenize(line);
        // Fragments that keep no sentence (leftovers of removed templates) are dropped.
        if tokens.split(' ').filter(|w| w.chars().any(char::is_alphabetic)).count() < 4 {
            continue;
        }
        rows.push(format!(" {tokens} "));
        rows.push(" ".to_string());
    }
    // Drop headings whose section kept nothing (a heading followed by another or by the end).
    let mut kept: Vec<String> = Vec::with_capacity(rows.len());
    for (i, row) in rows.iter().enumerate() {
        let is_heading = i > 1 && row.trim_start().starts_with('=');
        if is_heading {
            let next_prose = rows[i + 1..].iter().find(|r| !r.trim().is_empty());
            if next_prose.is_none_or(|r| r.trim_start().starts_with('=')) {
                continue;
            }
            // …and its blank row.
        }
        if row.trim().is_empty() && kept.last().is_some_and(|r: &String| r.trim().is_empty()) {
            continue;
        }
        kept.push(row.clone());
    }
    kept
}

/// `== Title ==` → (2, "Title").
fn heading(line: &str) -> Option<(usize, &str)> {
    let level = line.chars().take_while(|&c| c == '=').count();
    let trailing = line.chars().rev().take_while(|&c| c == '=').count();
    if level < 2 || level != trailing || line.len() <= 2 * level {
        return None;
    }
    Some((level, line[level..line.len() - level].trim()))
}

/// Remove a nested construct opened by `open` and closed by `close` (templates `{{ }}`, tables
/// `{| |}`); unbalanced openers drop the rest of the text, as an unterminated template would.
fn strip_nested(s: &str, open: &str, close: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut depth = 0usize;
    let mut i = 0;
    let b = s.as_bytes();
    while i < b.len() {
        if s[i..].starts_with(open) {
            depth += 1;
            i += open.len();
        } else if depth > 0 && s[i..].starts_with(close) {
            depth -= 1;
            i += close.len();
        } else {
            let ch = s[i..].chars().next().expect("in bounds");
            if depth == 0 {
                out.push(ch);
            }
            i += ch.len_utf8();
        }
    }
    out
}

/// Resolve `[[…]]` links: files, images, categories and interlanguage links vanish (with
/// their nested links); `[[target|label]]` → label, `[[target]]` → target.
fn strip_links(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(a) = rest.find("[[") {
        out.push_str(&rest[..a]);
        let after = &rest[a + 2..];
        // Find the matching ]] allowing nesting (captions of files hold links).
        let (mut depth, mut j, bytes) = (1usize, 0usize, after.as_bytes());
        while j + 1 < bytes.len() && depth > 0 {
            if &bytes[j..j + 2] == b"[[" {
                depth += 1;
                j += 2;
            } else if &bytes[j..j + 2] == b"]]" {
                depth -= 1;
                j += 2;
            } else {
                j += 1;
            }
        }
        if depth > 0 {
            return out; // unterminated: drop the rest
        }
        let inner = &after[..j - 2];
        let target = inner.split('|').next().unwrap_or("");
        let namespace = target.split_once(':').map(|(ns, _)| ns.trim().to_ascii_lowercase());
        let dropped = match namespace.as_deref() {
            Some("file" | "image" | "category" | "media") => true,
            Some(ns) => ns.len() <= 3 && ns.chars().all(|c| c.is_ascii_lowercase() || c == '-'),
            None => false,
        };
        if !dropped {
            let label = inner.rsplit('|').next().unwrap_or(inner);
            out.push_str(&strip_links(label));
        }
        rest = &after[j..];
    }
    out.push_str(rest);
    out
}

static COMMENT: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"(?s)<!--.*?-->").unwrap());
static REF: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"(?is)<ref[^>/]*/>|<ref[^>]*>.*?</ref>|<references[^>]*/>").unwrap());
static DROP_BLOCK: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?is)<(gallery|math|code|pre|timeline|score|imagemap|syntaxhighlight|table)[^>]*>.*?</\s*(gallery|math|code|pre|timeline|score|imagemap|syntaxhighlight|table)>").unwrap()
});
static TAG: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"<[^>]{0,200}>").unwrap());
static EXTERNAL: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"\[(?:https?|ftp)://[^\s\]]*\s*([^\]]*)\]").unwrap());
static QUOTES: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"'{2,5}").unwrap());

/// Wikitext markup → plain lines (headings keep their `=` marks).
pub fn strip_markup(markup: &str) -> String {
    let s = COMMENT.replace_all(markup, "");
    let s = REF.replace_all(&s, "");
    let s = DROP_BLOCK.replace_all(&s, "");
    let s = strip_nested(&s, "{{", "}}");
    let s = strip_nested(&s, "{|", "|}");
    let s = strip_links(&s);
    let s = EXTERNAL.replace_all(&s, "$1");
    let s = TAG.replace_all(&s, "");
    let s = QUOTES.replace_all(&s, "");
    s.replace("&nbsp;", " ")
        .replace("&ndash;", "–")
        .replace("&mdash;", "—")
        .replace("&minus;", "−")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

static NUM_SEP: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"(\d)([,.])(\d)").unwrap());
static HYPHEN: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"(\w)-(\w)").unwrap());
static PUNCT: LazyLock<Regex> = LazyLock::new(|| Regex::new(r#"([,;:!?()\[\]"“”])"#).unwrap());
static POSSESSIVE: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"(\w)'s\b").unwrap());
static PERIOD: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"(\S)\.(\s|$)").unwrap());
static SPACES: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"\s+").unwrap());

/// WikiText's tokenisation of one line: `@,@`/`@.@` inside numbers, `@-@` inside hyphenated
/// words, spaces around punctuation, `'s` split off, single spaces.
pub fn tokenize(line: &str) -> String {
    // Number separators become placeholders first so that the punctuation rule leaves them
    // alone; twice, because the matches of `1,000,000` and `a-b-c` overlap.
    let mut s = line.replace(['\u{1}', '\u{2}'], " ");
    for _ in 0..2 {
        s = NUM_SEP
            .replace_all(&s, |c: &regex::Captures| {
                format!("{}{}{}", &c[1], if &c[2] == "," { '\u{1}' } else { '\u{2}' }, &c[3])
            })
            .into_owned();
        s = HYPHEN.replace_all(&s, "$1 @-@ $2").into_owned();
    }
    let s = PUNCT.replace_all(&s, " $1 ");
    let s = POSSESSIVE.replace_all(&s, "$1 's");
    let s = PERIOD.replace_all(&s, "$1 .$2");
    let s = s.replace('\u{1}', " @,@ ").replace('\u{2}', " @.@ ");
    SPACES.replace_all(s.trim(), " ").into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::detok::wikitext_detokenize;

    #[test]
    fn tokenizes_like_wikitext() {
        assert_eq!(
            tokenize("The 1,000-year-old man's game (a role-playing game), released in 3.5 hours."),
            "The 1 @,@ 000 @-@ year @-@ old man 's game ( a role @-@ playing game ) , released in 3 @.@ 5 hours ."
        );
    }

    #[test]
    fn the_wikitext_detokenizer_undoes_the_tokenizer_on_prose() {
        let line =
            "Valkyria Chronicles III is a tactical role-playing game (2011), sold 1,000 copies: Sega's.";
        let row = format!(" {} ", tokenize(line));
        assert_eq!(wikitext_detokenize(&row).trim(), line);
    }

    #[test]
    fn strips_markup_and_lays_out_rows() {
        let markup = "{{Infobox person|name=X {{nested}}}}\n'''Ada''' was a [[mathematician|math person]] \
                      born in [[London]] ([[ἀν|ἀν]]).<ref>cite</ref> She wrote notes [http://x.org on engines].\n\
                      [[File:Ada.jpg|thumb|A [[portrait]]]]\n\n== Early life ==\n* a list item that goes\n\
                      She was the daughter of the poet Lord Byron.\n\n== Empty ==\n\n[[Category:People]]\n[[fr:Ada]]";
        let rows = article_rows("Ada Lovelace", markup);
        assert_eq!(
            rows,
            vec![
                " = Ada Lovelace = ",
                " ",
                " Ada was a math person born in London ( ἀν ) . She wrote notes on engines . ",
                " ",
                " = = Early life = = ",
                " ",
                " She was the daughter of the poet Lord Byron . ",
                " ",
            ]
        );
    }

    #[test]
    fn reads_articles_from_an_export() {
        let xml = "<mediawiki><page><title>A &amp; B</title><ns>0</ns><revision><text xml:space=\"preserve\">\
                   The first article has one sentence here.</text></revision></page>\
                   <page><title>Talk:A</title><ns>1</ns><revision><text>Talk page text is not prose here.</text></revision></page>\
                   <page><title>C</title><ns>0</ns><redirect title=\"A\" /><revision><text>#REDIRECT [[A]]</text></revision></page>\
                   </mediawiki>";
        let articles = wikitext_articles(xml);
        assert_eq!(articles.len(), 1);
        assert_eq!(articles[0].title, "A & B");
        assert_eq!(articles[0].rows[2], " The first article has one sentence here . ");
    }
}
