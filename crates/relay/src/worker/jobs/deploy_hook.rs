//! Environment events for the deploy side, signed per Standard Webhooks:
//! `webhook-id`, `webhook-timestamp`, `webhook-signature: v1,<base64 HMAC-SHA256>` over
//! `"{id}.{timestamp}.{body}"`, keyed with the base64-decoded part of the `whsec_` secret.
//! The id is stable across retries of one job so receivers can deduplicate.

use std::time::Duration;

use base64::Engine;
use hmac::{Hmac, Mac};
use relay_core::deployment::on_deploy_handed_over;
use relay_core::{BuildState, CommitHash, DeployEvent};
use relay_store::environments::EnvironmentRow;
use relay_store::integrations::IntegrationRecord;
use relay_store::jobs::ClaimedJob;
use secrecy::ExposeSecret;
use serde_json::{json, Value};
use sha2::Sha256;

use super::{Context, JobError};
use crate::secrets::SecretField;

/// Signs `body` for message `id` at `timestamp` (seconds) with a `whsec_...` secret.
pub(super) fn sign(secret: &str, id: &str, timestamp: i64, body: &[u8]) -> Option<String> {
    let key = base64::engine::general_purpose::STANDARD
        .decode(secret.strip_prefix("whsec_").unwrap_or(secret))
        .ok()?;
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).ok()?;
    mac.update(id.as_bytes());
    mac.update(b".");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    Some(format!(
        "v1,{}",
        base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
    ))
}

/// One event for the deploy side, and what Bitbucket hears once it is delivered.
#[derive(Debug)]
pub(super) struct Notice {
    pub environment: String,
    pub event: &'static str,
    /// Fields added to the event's `data`.
    pub extra: Value,
    /// The build status reported on the environment's head after delivery.
    pub status: StatusAfter,
}

/// What Bitbucket hears once the deploy side has an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum StatusAfter {
    Nothing,
    /// The commit was handed over for deployment: what that means depends on the
    /// integration's `deploy_feedback` and deploy targets.
    HandedOver,
    Fixed(BuildState, &'static str),
}

impl Notice {
    /// `deploy`: the commit is ready; Bitbucket shows the head as deployed.
    pub(super) fn deployed(environment: String, commit: &CommitHash) -> Self {
        Self {
            environment,
            event: "deployed",
            extra: json!({ "commit": commit.as_str() }),
            status: StatusAfter::HandedOver,
        }
    }

    /// `sync_from_parent`: the deploy side copies the parent's data.
    pub(super) fn synced(environment: String, parent: Option<String>) -> Self {
        Self {
            environment,
            event: "synced",
            extra: json!({ "parent": parent }),
            status: StatusAfter::Nothing,
        }
    }

    /// `notify_deploy_side`: a lifecycle event; a deletion stops the head's status.
    pub(super) fn lifecycle(
        environment: String,
        event: DeployEvent,
        parent: Option<String>,
        clone_parent_data: bool,
    ) -> Self {
        let status = match event {
            DeployEvent::Deleted => StatusAfter::Fixed(BuildState::Stopped, "environment deleted"),
            DeployEvent::Deactivated => {
                StatusAfter::Fixed(BuildState::Stopped, "environment deactivated")
            }
            _ => StatusAfter::Nothing,
        };
        Self {
            environment,
            event: event.as_str(),
            extra: json!({ "parent": parent, "clone_parent_data": clone_parent_data }),
            status,
        }
    }
}

pub(super) async fn run(
    context: &Context,
    job: &ClaimedJob,
    notice: Notice,
) -> Result<(), JobError> {
    let record = relay_store::integrations::get(&context.pool, &job.integration_id).await?;
    send(context, job, &record, &notice).await?;
    report_status(context, job, &record, &notice).await
}

/// Once the deploy side knows, Bitbucket hears it too, on the commit Bitbucket knows (the
/// head), not on a post-merge commit. (Failures are reported where they happen, in the git
/// jobs.)
async fn report_status(
    context: &Context,
    job: &ClaimedJob,
    record: &IntegrationRecord,
    notice: &Notice,
) -> Result<(), JobError> {
    let (state, description) = match notice.status {
        StatusAfter::Nothing => return Ok(()),
        StatusAfter::Fixed(state, description) => (state, description),
        StatusAfter::HandedOver => on_deploy_handed_over(
            record.settings.deploy_feedback,
            record.deploy_hook_url.is_some(),
            record.deploy_remote.is_some(),
        ),
    };
    let name = notice.environment.as_str();
    let Some(environment) =
        relay_store::environments::get(&context.pool, &job.integration_id, name).await?
    else {
        return Ok(());
    };
    let Some(commit) = environment
        .head_commit
        .as_deref()
        .and_then(|c| CommitHash::parse(c).ok())
    else {
        return Ok(());
    };
    // Deactivated by a policy (idle, draft): say which, and what brings it back.
    let description = match (notice.event, environment.waiting_text()) {
        ("deactivated", Some(why)) => why,
        _ => description,
    };
    let comments = record.settings.pull_request_comments;
    super::status::report(context, job, name, commit, state, description, comments).await
}

async fn send(
    context: &Context,
    job: &ClaimedJob,
    record: &IntegrationRecord,
    notice: &Notice,
) -> Result<(), JobError> {
    let Some(url) = record.deploy_hook_url.clone() else {
        tracing::debug!("no deploy_hook_url; event not sent");
        return Ok(());
    };
    let (event, extra) = (notice.event, notice.extra.clone());
    let environment_name = notice.environment.clone();
    let environment =
        relay_store::environments::get(&context.pool, &job.integration_id, &environment_name)
            .await?;
    let body = payload(
        record,
        &environment_name,
        environment.as_ref(),
        event,
        extra,
        job,
    );
    let body = serde_json::to_vec(&body)
        .map_err(|e| JobError::permanent(format!("event cannot be encoded: {e}")))?;

    let secret = context
        .key
        .decrypt(
            &record.id,
            SecretField::DeployHookSecret,
            &record.deploy_hook_secret_ciphertext,
        )
        .map_err(|e| JobError::permanent(e.to_string()))?;
    let id = format!("msg_{}", job.id);
    let timestamp = chrono::Utc::now().timestamp();
    let signature = sign(secret.expose_secret(), &id, timestamp, &body).ok_or_else(|| {
        JobError::permanent("the deploy hook secret is not a valid whsec_ secret")
    })?;
    let signature =
        super::signatures::with_previous(context, &record.id, signature, &id, timestamp, &body)
            .await?;

    let response = context
        .http
        .post(&url)
        .timeout(Duration::from_secs(10))
        .header("content-type", "application/json")
        .header("webhook-id", &id)
        .header("webhook-timestamp", timestamp.to_string())
        .header("webhook-signature", signature)
        .body(body)
        .send()
        .await
        .map_err(|e| {
            JobError::transient(format!("deploy hook {}: {}", redact(&url), e.without_url()))
        })?;
    let status = response.status();
    if status.is_success() {
        let status = status.as_u16();
        tracing::info!(
            environment = environment_name,
            event,
            status,
            "deploy hook delivered"
        );
        return Ok(());
    }
    // 4xx other than timeouts and rate limits will not improve by itself, but the receiver may
    // be fixed by its operator: retry all, and let the dead letter catch what never recovers.
    Err(JobError::transient(format!(
        "deploy hook {} answered {status}",
        redact(&url)
    )))
}

fn payload(
    record: &IntegrationRecord,
    name: &str,
    environment: Option<&EnvironmentRow>,
    event: &str,
    extra: Value,
    job: &ClaimedJob,
) -> Value {
    let url =
        relay_core::environment::environment_url(None, record.environment_url.as_deref(), name);
    let mut data = json!({
        "integration": record.id,
        "repository": record.repository,
        "environment": name,
        "url": url,
        "delivery_id": job.delivery_id,
    });
    if let Some(env) = environment {
        data["kind"] = json!(env.kind);
        data["status"] = json!(env.status);
        data["branch"] = json!(env.branch);
        data["head_commit"] = json!(env.head_commit);
        data["failure_reason"] = json!(env.failure_reason);
        if let Some(pr) = env.pr_id {
            data["pull_request"] = json!({
                "id": pr,
                "source_branch": env.pr_source_branch,
                "target_branch": env.pr_target_branch,
                "state": env.pr_state,
            });
        }
    }
    if let (Value::Object(data), Value::Object(extra)) = (&mut data, extra) {
        for (k, v) in extra {
            data.insert(k, v);
        }
    }
    json!({
        "type": format!("environment.{event}"),
        "timestamp": chrono::Utc::now().to_rfc3339(),
        "data": data,
    })
}

fn redact(url: &str) -> String {
    crate::redact::url(url)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_matches_the_standard_webhooks_reference() {
        // Test vector from the Standard Webhooks specification's reference libraries.
        let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
        let body = br#"{"test": 2432232314}"#;
        let signature = sign(secret, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body).unwrap();
        assert_eq!(signature, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
    }
}
