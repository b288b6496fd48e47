//! One module per console page; each has its handlers and its template's data.

pub(super) mod deliveries;
pub(super) mod environments;
pub(super) mod integration;
pub(super) mod jobs;
pub(super) mod login;
pub(super) mod overview;
mod settings;

use relay_core::TextEnum;
use serde::Deserialize;

use super::error::ConsoleError;
use crate::http::AppState;

/// Rows per page of a list; "Older" shows the next ones.
const PAGE_SIZE: i64 = 50;

/// Unknown console paths get the console's own 404 page (with its security headers).
pub(super) async fn not_found() -> ConsoleError {
    ConsoleError::NotFound("page".into())
}

/// A numeric id from the path, or the console's 404 (a hand-typed URL, not a bad request).
fn id_from_path(raw: &str, what: &str) -> Result<i64, ConsoleError> {
    raw.parse()
        .map_err(|_| ConsoleError::NotFound(what.to_owned()))
}

/// One option of a filter's `<select>`.
pub(crate) struct Choice {
    pub(crate) value: String,
    pub(crate) selected: bool,
}

fn choices<'a>(values: impl IntoIterator<Item = &'a str>, selected: Option<&str>) -> Vec<Choice> {
    values
        .into_iter()
        .map(|value| Choice {
            selected: Some(value) == selected,
            value: value.to_owned(),
        })
        .collect()
}

/// Every value of a stored enum as options, `selected` marked.
fn enum_choices<T: TextEnum + PartialEq>(selected: Option<T>) -> Vec<Choice> {
    T::ALL
        .iter()
        .map(|value| Choice {
            selected: Some(*value) == selected,
            value: value.as_str().to_owned(),
        })
        .collect()
}

async fn integration_choices(
    state: &AppState,
    selected: Option<&str>,
) -> Result<Vec<Choice>, ConsoleError> {
    let records = relay_store::integrations::list(&state.pool).await?;
    Ok(choices(records.iter().map(|r| r.id.as_str()), selected))
}

/// A filter value naming a variant of `T` (empty means no filter).
fn one_of<T: TextEnum>(field: &str, value: Option<&str>) -> Result<Option<T>, ConsoleError> {
    value
        .map(|v| {
            T::parse_text(v).ok_or_else(|| {
                ConsoleError::BadRequest(format!(
                    "{field} must be one of {}",
                    relay_core::text::spellings::<T>()
                ))
            })
        })
        .transpose()
}

fn before(raw: Option<&str>) -> Result<Option<i64>, ConsoleError> {
    raw.map(|v| {
        v.parse()
            .map_err(|_| ConsoleError::BadRequest("before must be an id".into()))
    })
    .transpose()
}

/// The one field of forms whose action returns to the list they were posted from.
#[derive(Debug, Deserialize)]
pub(super) struct BackForm {
    back: Option<String>,
}

impl BackForm {
    fn target<'a>(&'a self, default: &'a str) -> &'a str {
        match self.back.as_deref() {
            Some(back) => super::session::safe_next(Some(back)),
            None => default,
        }
    }
}
