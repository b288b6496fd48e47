//! Enums stored as text: each variant has exactly one spelling, used alike in the database,
//! in JSON and on the command line, so nothing downstream compares a state with a literal.
//!
//! The trait is what relay-store maps through sqlx (this crate stays free of it); the macro
//! writes the trait, `as_str`, `ALL`, `Display` and `FromStr` from one table of spellings.

/// An enum whose variants are stored as text.
pub trait TextEnum: Sized + Copy + 'static {
    /// What a value is, for error messages ("environment kind").
    const WHAT: &'static str;
    /// Every variant, in declaration order.
    const ALL: &'static [Self];
    /// The stored spelling.
    fn as_str(self) -> &'static str;
    /// The variant spelled exactly `text`.
    fn parse_text(text: &str) -> Option<Self>;
}

/// The spellings of every variant of `T`, for "expected one of" messages.
pub fn spellings<T: TextEnum>() -> String {
    T::ALL
        .iter()
        .map(|v| v.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

/// `text_enum!(Type, "what it is", { Variant => "text", ... })` implements [`TextEnum`],
/// inherent `as_str` and `ALL`, `Display` and an exact-match `FromStr` (error:
/// [`crate::event::UnknownValue`]) for a fieldless enum. The serde spelling is declared on
/// the enum itself; each crate's tests check the two agree.
#[macro_export]
macro_rules! text_enum {
    ($ty:ident, $what:literal, { $($variant:ident => $text:literal),+ $(,)? }) => {
        impl $ty {
            /// The stored spelling (database, JSON, command line).
            pub fn as_str(self) -> &'static str {
                match self { $(Self::$variant => $text),+ }
            }
            /// Every variant, in declaration order.
            pub const ALL: &'static [$ty] = &[$(Self::$variant),+];
        }
        impl ::std::fmt::Display for $ty {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
        impl ::std::str::FromStr for $ty {
            type Err = $crate::event::UnknownValue;
            fn from_str(s: &str) -> ::std::result::Result<Self, Self::Err> {
                match s {
                    $($text => Ok(Self::$variant),)+
                    _ => Err($crate::event::UnknownValue { what: $what, value: s.to_owned() }),
                }
            }
        }
        impl $crate::TextEnum for $ty {
            const WHAT: &'static str = $what;
            const ALL: &'static [Self] = &[$(Self::$variant),+];
            fn as_str(self) -> &'static str {
                <$ty>::as_str(self)
            }
            fn parse_text(text: &str) -> ::std::option::Option<Self> {
                text.parse().ok()
            }
        }
    };
}
