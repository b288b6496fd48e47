//! Bitbucket REST clients (in progress).
