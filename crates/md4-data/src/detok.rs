//! Zero-shot detokenizers (spec §11.1, SEDD's evaluation pipeline): they undo the whitespace
//! tokenisation of WikiText, PTB and LM1B, and normalise LAMBADA's quotes, before GPT-2 BPE.
//! Each rule is a literal replacement or a regex substitution applied in the listed order.

use std::sync::LazyLock;

use regex::Regex;
use serde::{Deserialize, Serialize};

/// Which detokenizer a zero-shot data set uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Detokenizer {
    /// Rows are used as they are.
    Identity,
    Wikitext,
    Ptb,
    Lm1b,
    Lambada,
}

impl Detokenizer {
    pub fn apply(self, text: &str) -> String {
        match self {
            Detokenizer::Identity => text.to_string(),
            Detokenizer::Wikitext => wikitext_detokenize(text),
            Detokenizer::Ptb => ptb_detokenize(text),
            Detokenizer::Lm1b => lm1b_detokenize(text),
            Detokenizer::Lambada => lambada_detokenize(text),
        }
    }
}

fn re(pattern: &str) -> Regex {
    Regex::new(pattern).expect("detokenizer pattern compiles")
}

static WT_BRACKETS: LazyLock<[(Regex, &str); 5]> = LazyLock::new(|| {
    [
        (re(r"\(\s*([^)]*?)\s*\)"), "(${1})"),
        (re(r"\[\s*([^\]]*?)\s*\]"), "[${1}]"),
        (re(r"\{\s*([^}]*?)\s*\}"), "{${1}}"),
        (re(r#""\s*([^"]*?)\s*""#), "\"${1}\""),
        (re(r"'\s*([^']*?)\s*'"), "'${1}'"),
    ]
});

/// WikiText: `s '`→`s'`; ` @-@ `→`-`, ` @,@ `→`,`, ` @.@ `→`.`; ` : `→`: ` (and `;`, `.`,
/// `!`, `?`, `,`); collapse spaces just inside (), [], {}, "…", '…'; `= = = =`→`====`,
/// `= = =`→`===`, `= =`→`==`; ` ° `→`°`; drop spaces next to newlines; ` N `→` 1 `; ` 's`→`'s`.
pub fn wikitext_detokenize(text: &str) -> String {
    let mut s = text.replace("s '", "s'");
    for (from, to) in [(" @-@ ", "-"), (" @,@ ", ","), (" @.@ ", ".")] {
        s = s.replace(from, to);
    }
    for p in [":", ";", ".", "!", "?", ","] {
        s = s.replace(&format!(" {p} "), &format!("{p} "));
    }
    for (pattern, replacement) in WT_BRACKETS.iter() {
        s = pattern.replace_all(&s, *replacement).into_owned();
    }
    for (from, to) in [("= = = =", "===="), ("= = =", "==="), ("= =", "=="), (" \u{b0} ", "\u{b0}")] {
        s = s.replace(from, to);
    }
    for (from, to) in [(" \n", "\n"), ("\n ", "\n"), (" N ", " 1 "), (" 's", "'s")] {
        s = s.replace(from, to);
    }
    s
}

/// PTB: ` 's`→`'s`; `s ' `→`s' `; ` n't`→`n't`; ` \n `→`\n`; `\/`→`/`; ` N `→` 1 ` (repeated
/// until no ` N ` is left, since one pass leaves every other N of a run); `$ 1`→`$1`;
/// `# 1`→`#1`; `<unk>`→`?`.
pub fn ptb_detokenize(text: &str) -> String {
    let mut s = text.to_string();
    for (from, to) in [(" 's", "'s"), ("s ' ", "s' "), (" n't", "n't"), (" \n ", "\n"), ("\\/", "/")] {
        s = s.replace(from, to);
    }
    while s.contains(" N ") {
        s = s.replace(" N ", " 1 ");
    }
    for (from, to) in [("$ 1", "$1"), ("# 1", "#1"), ("<unk>", "?")] {
        s = s.replace(from, to);
    }
    s
}

enum Step {
    Literal(&'static str, &'static str),
    Regex(Regex, &'static str),
}

static LM1B_STEPS: LazyLock<Vec<Step>> = LazyLock::new(|| {
    use Step::{Literal, Regex as R};
    vec![
        Literal("http : / / ", "http://"),
        Literal("https : / / ", "https://"),
        R(re(r" '(\w+)"), "'${1}"),
        R(re(r" (\w+) \. "), " ${1}. "),
        R(re(r" (\w+) \.$"), " ${1}."),
        Literal(" ? ", "? "),
        R(re(r" \?$"), "?"),
        Literal(" ! ", "! "),
        R(re(r" !$"), "!"),
        Literal(" , ", ", "),
        Literal(" : ", ": "),
        Literal(" ; ", "; "),
        Literal(" / ", "/"),
        R(re(r#"" ([^"]+) ""#), "\"${1}\""),
        R(re(r"' ([^']+) '"), "'${1}'"),
        R(re(r"\( ([^()]+) \)"), "(${1})"),
        R(re(r"\[ ([^\[\]]+) \]"), "[${1}]"),
        Literal("$ ", "$"),
        Literal("\u{a3} ", "\u{a3}"),
    ]
});

/// LM1B: re-join `http : / / ` and `https : / / `; attach apostrophe words (` 'x`→`'x`); attach
/// inner and final periods to words; ` ? `→`? `, ` ! `→`! ` (and at the end); ` , `→`, `,
/// ` : `→`: `, ` ; `→`; `, ` / `→`/`; collapse spaces inside quotes, parentheses and brackets;
/// `$ `→`$`, `£ `→`£`.
pub fn lm1b_detokenize(text: &str) -> String {
    let mut s = text.to_string();
    for step in LM1B_STEPS.iter() {
        s = match step {
            Step::Literal(from, to) => s.replace(from, to),
            Step::Regex(pattern, replacement) => pattern.replace_all(&s, *replacement).into_owned(),
        };
    }
    s
}

/// LAMBADA: curly double quotes → `"`, strip surrounding whitespace, prepend a newline.
pub fn lambada_detokenize(text: &str) -> String {
    let s = text.replace(['\u{201c}', '\u{201d}'], "\"");
    format!("\n{}", s.trim())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wikitext_rules() {
        // One golden case per rule.
        assert_eq!(wikitext_detokenize("the players ' union"), "the players' union");
        assert_eq!(wikitext_detokenize("a 1 @,@ 000 @-@ year @.@ 5 b"), "a 1,000-year.5 b");
        assert_eq!(wikitext_detokenize("a : b ; c . d ! e ? f , g"), "a: b; c. d! e? f, g");
        assert_eq!(wikitext_detokenize("x ( in brackets ) y"), "x (in brackets) y");
        assert_eq!(wikitext_detokenize("[ a ] { b } \" c \" ' d '"), "[a] {b} \"c\" 'd'");
        assert_eq!(wikitext_detokenize(" = = = Title = = = \n"), " === Title ===\n");
        assert_eq!(wikitext_detokenize(" = = = = T = = = = "), " ==== T ==== ");
        assert_eq!(wikitext_detokenize(" = = T = = "), " == T == ");
        assert_eq!(wikitext_detokenize("it was 20 \u{b0} C"), "it was 20\u{b0}C");
        assert_eq!(wikitext_detokenize("end \n start"), "end\nstart");
        assert_eq!(wikitext_detokenize("in N years"), "in 1 years");
        assert_eq!(wikitext_detokenize("the king 's crown"), "the king's crown");
        assert_eq!(wikitext_detokenize(""), "");
    }

    #[test]
    fn ptb_rules() {
        assert_eq!(ptb_detokenize("the company 's shares"), "the company's shares");
        assert_eq!(ptb_detokenize("investors ' money"), "investors' money");
        assert_eq!(ptb_detokenize("it does n't"), "it doesn't");
        assert_eq!(ptb_detokenize("a \n b"), "a\nb");
        assert_eq!(ptb_detokenize("and\\/or"), "and/or");
        assert_eq!(ptb_detokenize(" N N N N "), " 1 1 1 1 ");
        assert_eq!(ptb_detokenize("cost $ N million"), "cost $1 million");
        assert_eq!(ptb_detokenize("the # N spot"), "the #1 spot");
        assert_eq!(ptb_detokenize("mr. <unk> said"), "mr. ? said");
    }

    #[test]
    fn lm1b_rules() {
        assert_eq!(lm1b_detokenize("see http : / / x.com now"), "see http://x.com now");
        assert_eq!(lm1b_detokenize("at https : / / y.org"), "at https://y.org");
        assert_eq!(lm1b_detokenize("they 've gone"), "they've gone");
        assert_eq!(lm1b_detokenize("It ended . Then more ."), "It ended. Then more.");
        assert_eq!(lm1b_detokenize("why ? because ?"), "why? because?");
        assert_eq!(lm1b_detokenize("wow ! yes !"), "wow! yes!");
        assert_eq!(lm1b_detokenize("a , b : c ; d / e"), "a, b: c; d/e");
        assert_eq!(lm1b_detokenize("he said \" hi there \" ok"), "he said \"hi there\" ok");
        assert_eq!(lm1b_detokenize("x ( y ) [ z ]"), "x (y) [z]");
        assert_eq!(lm1b_detokenize("cost $ 5 or \u{a3} 3"), "cost $5 or \u{a3}3");
    }

    #[test]
    fn lambada_rules() {
        assert_eq!(lambada_detokenize("  \u{201c}Hi,\u{201d} she said. "), "\n\"Hi,\" she said.");
        assert_eq!(Detokenizer::Lambada.apply(""), "\n");
        assert_eq!(Detokenizer::Identity.apply(" a  b "), " a  b ");
    }
}
