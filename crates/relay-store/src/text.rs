//! Text columns read and written as enums.
//!
//! relay-core stays free of sqlx, and the orphan rule forbids implementing sqlx's traits for
//! its enums here, so one transparent wrapper carries any [`TextEnum`] through sqlx as TEXT.
//! Checked queries name it in a column override (`kind AS "kind: Text<EnvironmentKind>"`),
//! and the macros' `.into()` hands the row struct the bare enum; parameters bind `as_str()`.
//! A stored spelling no variant has is a decode error naming the column's value.

use relay_core::{EnvironmentKind, EnvironmentStatus, IntegrationType, JobKind, TextEnum};
use sqlx::encode::IsNull;
use sqlx::error::BoxDynError;
use sqlx::postgres::{PgArgumentBuffer, PgHasArrayType, PgTypeInfo, PgValueRef};
use sqlx::{Decode, Encode, Postgres, Type};

use crate::states::{DeliveryStatus, JobState};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Text<T>(pub T);

impl<T: TextEnum> Type<Postgres> for Text<T> {
    fn type_info() -> PgTypeInfo {
        <&str as Type<Postgres>>::type_info()
    }

    /// TEXT, VARCHAR and the other string types, like `String`.
    fn compatible(ty: &PgTypeInfo) -> bool {
        <&str as Type<Postgres>>::compatible(ty)
    }
}

impl<T: TextEnum> PgHasArrayType for Text<T> {
    fn array_type_info() -> PgTypeInfo {
        <&str as PgHasArrayType>::array_type_info()
    }

    fn array_compatible(ty: &PgTypeInfo) -> bool {
        <&str as PgHasArrayType>::array_compatible(ty)
    }
}

impl<'r, T: TextEnum> Decode<'r, Postgres> for Text<T> {
    fn decode(value: PgValueRef<'r>) -> Result<Self, BoxDynError> {
        let text = <&str as Decode<Postgres>>::decode(value)?;
        T::parse_text(text).map(Text).ok_or_else(|| {
            format!(
                "unknown {} {text:?} (expected one of: {})",
                T::WHAT,
                relay_core::text::spellings::<T>()
            )
            .into()
        })
    }
}

impl<T: TextEnum> Encode<'_, Postgres> for Text<T> {
    fn encode_by_ref(&self, buf: &mut PgArgumentBuffer) -> Result<IsNull, BoxDynError> {
        <&str as Encode<Postgres>>::encode(self.0.as_str(), buf)
    }

    fn size_hint(&self) -> usize {
        self.0.as_str().len()
    }
}

/// `From<Text<E>> for E`, which the checked macros' `.into()` needs. It cannot be generic
/// (`impl<T> From<Text<T>> for T` breaks the orphan rule), hence one line per enum.
macro_rules! unwrap_text {
    ($($ty:ty),+ $(,)?) => {
        $(impl From<Text<$ty>> for $ty {
            fn from(text: Text<$ty>) -> Self {
                text.0
            }
        })+
    };
}

unwrap_text!(
    EnvironmentKind,
    EnvironmentStatus,
    IntegrationType,
    JobKind,
    JobState,
    DeliveryStatus,
    crate::states::CircuitState,
    relay_core::deployment::DeployFeedback,
    relay_core::deployment::DeploymentState,
);
