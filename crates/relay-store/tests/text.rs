//! Stored enums through a real PostgreSQL: every spelling goes in and comes back as the same
//! variant, and a spelling no variant has is an error that names it.
#![allow(clippy::unwrap_used)]

use relay_core::{EnvironmentKind, EnvironmentStatus, IntegrationType, JobKind};
use relay_store::{DeliveryStatus, JobState, Text};
use sqlx::PgPool;

/// Each variant of `$ty`, bound as `Text<$ty>`, decodes back to itself. The query must
/// read the column as `Text<$ty>`; macros cannot write it into the literal.
macro_rules! round_trip {
    ($pool:expr, $ty:ty, $sql:tt) => {
        for value in <$ty>::ALL {
            let back = sqlx::query_scalar!($sql, Text(*value) as _)
                .fetch_one($pool)
                .await
                .unwrap();
            assert_eq!(back, Text(*value));
        }
    };
}

#[sqlx::test(migrations = false)]
async fn every_spelling_survives_the_database(pool: PgPool) {
    let pool = &pool;
    round_trip!(
        pool,
        EnvironmentKind,
        r#"SELECT $1::text AS "v!: Text<EnvironmentKind>""#
    );
    round_trip!(
        pool,
        EnvironmentStatus,
        r#"SELECT $1::text AS "v!: Text<EnvironmentStatus>""#
    );
    round_trip!(
        pool,
        IntegrationType,
        r#"SELECT $1::text AS "v!: Text<IntegrationType>""#
    );
    round_trip!(pool, JobKind, r#"SELECT $1::text AS "v!: Text<JobKind>""#);
    round_trip!(pool, JobState, r#"SELECT $1::text AS "v!: Text<JobState>""#);
    round_trip!(
        pool,
        DeliveryStatus,
        r#"SELECT $1::text AS "v!: Text<DeliveryStatus>""#
    );
}

#[sqlx::test(migrations = false)]
async fn unknown_text_is_an_error_naming_it(pool: PgPool) {
    let err = sqlx::query_scalar!(r#"SELECT 'failed'::text AS "value!: Text<JobState>""#)
        .fetch_one(&pool)
        .await
        .unwrap_err();
    let message = err.to_string();
    assert!(
        message.contains(r#"unknown job state "failed""#)
            && message.contains("pending, running, succeeded, dead"),
        "{message}"
    );
}

#[sqlx::test(migrations = false)]
async fn varchar_reads_like_text(pool: PgPool) {
    let kind =
        sqlx::query_scalar!(r#"SELECT 'pull_request'::varchar AS "value!: Text<EnvironmentKind>""#)
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(kind, Text(EnvironmentKind::PullRequest));
}

/// `jobs.kind` has no CHECK constraint (a newer relay may add kinds): reading a kind this
/// build does not know fails loudly instead of showing a wrong one.
#[sqlx::test(migrations = "../../migrations")]
async fn a_job_of_an_unknown_kind_is_reported(pool: PgPool) {
    sqlx::query!(
        r#"INSERT INTO integrations (id, type, repository, oauth_key, oauth_secret_ciphertext,
                                     webhook_secret_ciphertext, deploy_hook_secret_ciphertext)
           VALUES ('i1', 'bitbucket', 'ws/repo', 'k', '\x00', '\x00', '\x00')"#
    )
    .execute(&pool)
    .await
    .unwrap();
    sqlx::query!(
        r#"INSERT INTO jobs (integration_id, kind, queue_key, payload)
           VALUES ('i1', 'from_the_future', 'future:i1', '{}')"#
    )
    .execute(&pool)
    .await
    .unwrap();
    let err = relay_store::jobs::list(&pool, None, None, None, 10)
        .await
        .unwrap_err();
    assert!(
        err.to_string()
            .contains(r#"unknown job kind "from_the_future""#),
        "{err}"
    );
    let claimed = relay_store::jobs::claim(&pool, JobKind::ALL, std::time::Duration::from_secs(1))
        .await
        .unwrap();
    assert!(claimed.is_none(), "only known kinds are claimed");
}
