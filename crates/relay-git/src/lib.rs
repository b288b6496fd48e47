//! git mirrors (in progress).
