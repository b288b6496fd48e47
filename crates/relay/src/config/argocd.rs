//! `RELAY_ARGOCD_APPLICATIONSETS`: the ApplicationSets the relay refreshes.

use super::ConfigError;

/// One ApplicationSet, `namespace/name` in `RELAY_ARGOCD_APPLICATIONSETS`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApplicationSetRef {
    pub namespace: String,
    pub name: String,
}

impl std::fmt::Display for ApplicationSetRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

/// Parses `namespace/name,namespace/name` (spaces around entries and a trailing comma are
/// fine). Namespaces are DNS labels and names DNS subdomains, as Kubernetes requires.
pub fn parse_application_sets(raw: &str) -> Result<Vec<ApplicationSetRef>, ConfigError> {
    let invalid = |message: String| ConfigError::Invalid {
        name: "RELAY_ARGOCD_APPLICATIONSETS",
        message,
    };
    let mut sets = Vec::new();
    for entry in raw.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        let Some((namespace, name)) = entry.split_once('/') else {
            return Err(invalid(format!(
                "{entry:?} is not namespace/name (for example argocd/previews)"
            )));
        };
        let label = |s: &str| {
            (1..=63).contains(&s.len())
                && s.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                && !s.starts_with('-')
                && !s.ends_with('-')
        };
        if !label(namespace) {
            return Err(invalid(format!(
                "{entry:?}: {namespace:?} is not a Kubernetes namespace name"
            )));
        }
        if name.len() > 253 || !name.split('.').all(label) {
            return Err(invalid(format!(
                "{entry:?}: {name:?} is not a Kubernetes object name"
            )));
        }
        let set = ApplicationSetRef {
            namespace: namespace.to_owned(),
            name: name.to_owned(),
        };
        if !sets.contains(&set) {
            sets.push(set);
        }
    }
    Ok(sets)
}
