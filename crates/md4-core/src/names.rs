//! One spelling per option (issue 16): [`crate::named_enum!`] declares a fieldless enum whose every
//! variant is spelt once, and derives from that one spelling what configs, cards and command
//! lines need — serde (`#[serde(rename = …)]`), `name()`, `Display`, `parse()`/`FromStr` with an
//! error that lists the spellings, and `ALL`. The crate that uses it needs `serde`.

/// `"a"`, `"a or b"`, `"a, b or c"`: how an error lists the accepted spellings.
pub fn one_of(names: &[&str]) -> String {
    match names {
        [] => String::new(),
        [one] => (*one).to_string(),
        [init @ .., last] => format!("{} or {last}", init.join(", ")),
    }
}

/// Declares a fieldless enum with one spelling per variant:
///
/// ```
/// md4_core::named_enum! {
///     /// A toy option.
///     pub enum Toy("toy option") {
///         /// The first.
///         First = "first",
///         Second = "second-one",
///     }
/// }
/// assert_eq!(Toy::parse("second-one"), Ok(Toy::Second));
/// assert_eq!(Toy::First.to_string(), "first");
/// assert_eq!(Toy::parse("third").unwrap_err(), "unknown toy option 'third' (expected first or second-one)");
/// ```
///
/// Attributes before `enum` (docs, extra derives such as `Default` or `Hash`) and before each
/// variant (docs, `#[default]`) are kept; the enum always derives `Clone, Copy, Debug,
/// PartialEq, Eq, Serialize, Deserialize`.
#[macro_export]
macro_rules! named_enum {
    (
        $(#[$meta:meta])*
        $vis:vis enum $name:ident($what:literal) {
            $($(#[$vmeta:meta])* $variant:ident = $spelling:literal),+ $(,)?
        }
    ) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
        $vis enum $name {
            $($(#[$vmeta])* #[serde(rename = $spelling)] $variant),+
        }

        impl $name {
            /// Every variant, in declaration order.
            pub const ALL: [Self; [$(stringify!($variant)),+].len()] = [$(Self::$variant),+];

            /// The one spelling of this variant (configs, cards, command lines).
            pub fn name(&self) -> &'static str {
                match self {
                    $(Self::$variant => $spelling),+
                }
            }

            /// The variant spelt `s`: the inverse of [`Self::name`].
            pub fn parse(s: &str) -> Result<Self, String> {
                Self::ALL.iter().copied().find(|v| v.name() == s).ok_or_else(|| {
                    let names: Vec<&str> = Self::ALL.iter().map(|v| v.name()).collect();
                    format!("unknown {} '{s}' (expected {})", $what, $crate::names::one_of(&names))
                })
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.name())
            }
        }

        impl std::str::FromStr for $name {
            type Err = String;
            fn from_str(s: &str) -> Result<Self, String> {
                Self::parse(s)
            }
        }
    };
}

#[cfg(test)]
mod tests {
    use super::one_of;
    use crate::{Grid, Precision};

    #[test]
    fn spellings_round_trip_through_serde_name_and_parse() {
        for grid in Grid::ALL {
            assert_eq!(serde_yaml::to_string(&grid).unwrap().trim(), grid.name());
            assert_eq!(grid.name().parse::<Grid>(), Ok(grid));
        }
        for precision in Precision::ALL {
            assert_eq!(serde_yaml::to_string(&precision).unwrap().trim(), precision.name());
            let back: Precision = serde_yaml::from_str(precision.name()).unwrap();
            assert_eq!(back, precision);
        }
        assert_eq!(
            Precision::parse("f32").unwrap_err(),
            "unknown precision 'f32' (expected f32-gumbel or f64)"
        );
    }

    #[test]
    fn lists_read_as_english() {
        assert_eq!(one_of(&["a"]), "a");
        assert_eq!(one_of(&["a", "b"]), "a or b");
        assert_eq!(one_of(&["a", "b", "c"]), "a, b or c");
    }
}
