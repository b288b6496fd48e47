//! `refresh_application_sets`: sets Argo CD's refresh annotation on each configured
//! ApplicationSet (`RELAY_ARGOCD_APPLICATIONSETS`), so its controller asks the plugin
//! generator for parameters now instead of at its next requeue.
//!
//! The first attempt runs in the integration's git lane (see `relay_store::jobs::queue_key`),
//! after the pushes of the changes it announces. It makes one try; when that fails for a
//! reason worth retrying it queues a `retry: true` job in a lane of its own and succeeds, so a
//! Kubernetes API that is down delays refreshes but never mirroring.

use std::time::Duration;

use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind, Patch, PatchParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use relay_core::JobSpec;
use relay_store::jobs::ClaimedJob;
use serde_json::json;

use super::{Context, JobError};
use crate::config::ApplicationSetRef;

pub const REFRESH_ANNOTATION: &str = "argocd.argoproj.io/application-set-refresh";

/// Kubernetes' answers within this, or the attempt counts as failed (and is retried).
const TIMEOUT: Duration = Duration::from_secs(10);

pub async fn refresh(context: &Context, job: &ClaimedJob, retry: bool) -> Result<(), JobError> {
    let sets = &context.config.application_sets;
    if sets.is_empty() {
        return Err(JobError::permanent(
            "RELAY_ARGOCD_APPLICATIONSETS is not set on the relay that ran this job",
        ));
    }
    let result = patch_all(context, sets).await;
    match result {
        Ok(()) => Ok(()),
        Err(err) if err.transient && !retry => {
            tracing::warn!(error = %err, "ApplicationSets not refreshed; retrying outside the git lane");
            let next = JobSpec::RefreshApplicationSets { retry: true };
            let mut conn = context
                .pool
                .acquire()
                .await
                .map_err(relay_store::StoreError::from)?;
            relay_store::argocd::queue_refresh(&mut conn, &job.integration_id, &next).await?;
            Ok(())
        }
        Err(err) => Err(err),
    }
}

async fn patch_all(context: &Context, sets: &[ApplicationSetRef]) -> Result<(), JobError> {
    let client = context
        .kube
        .get_or_try_init(|| client(context.config.kubeconfig.as_deref()))
        .await?;
    let resource = ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("argoproj.io", "v1alpha1", "ApplicationSet"),
        "applicationsets",
    );
    let patch = json!({ "metadata": { "annotations": { REFRESH_ANNOTATION: "true" } } });
    let params = PatchParams {
        field_manager: Some("bitbucket-relay".into()),
        ..PatchParams::default()
    };
    for set in sets {
        let api: Api<DynamicObject> =
            Api::namespaced_with(client.clone(), &set.namespace, &resource);
        let patched = tokio::time::timeout(
            TIMEOUT,
            api.patch(&set.name, &params, &Patch::Merge(&patch)),
        )
        .await
        .map_err(|_| {
            JobError::transient(format!(
                "ApplicationSet {set}: no answer within {} s",
                TIMEOUT.as_secs()
            ))
        })?;
        match patched {
            Ok(_) => tracing::info!(application_set = %set, "ApplicationSet refresh requested"),
            // Not created yet, or removed: nothing to refresh; the others still are.
            Err(kube::Error::Api(status)) if status.code == 404 => {
                tracing::warn!(application_set = %set, "ApplicationSet not found; not refreshed");
            }
            Err(err) => return Err(classify(set, err)),
        }
    }
    Ok(())
}

/// Missing permissions, throttling and server trouble are retried (an operator or the API
/// server fixes them); a refused patch is not.
fn classify(set: &ApplicationSetRef, err: kube::Error) -> JobError {
    let message = format!("ApplicationSet {set}: {err}");
    match &err {
        kube::Error::Api(status) => {
            let code = status.code;
            if matches!(code, 401 | 403 | 408 | 409 | 429) || code >= 500 {
                JobError::transient(message)
            } else {
                JobError::permanent(message)
            }
        }
        kube::Error::SerdeError(_) | kube::Error::BuildRequest(_) => JobError::permanent(message),
        _ => JobError::transient(message),
    }
}

/// `KUBECONFIG` (one path or several separated like `PATH`) when given, else what kube-rs
/// infers: `~/.kube/config`, then the pod's service account.
async fn client(kubeconfig: Option<&str>) -> Result<kube::Client, JobError> {
    let failed = |e: &dyn std::fmt::Display| {
        JobError::transient(format!("cannot configure the Kubernetes client: {e}"))
    };
    let mut config = match kubeconfig {
        Some(paths) => {
            let mut merged: Option<Kubeconfig> = None;
            for path in std::env::split_paths(paths) {
                let file = Kubeconfig::read_from(&path).map_err(|e| failed(&e))?;
                merged = Some(match merged {
                    None => file,
                    Some(so_far) => so_far.merge(file).map_err(|e| failed(&e))?,
                });
            }
            let merged = merged.ok_or_else(|| failed(&"KUBECONFIG names no file"))?;
            kube::Config::from_custom_kubeconfig(merged, &KubeConfigOptions::default())
                .await
                .map_err(|e| failed(&e))?
        }
        None => kube::Config::infer().await.map_err(|e| failed(&e))?,
    };
    config.connect_timeout = Some(Duration::from_secs(5));
    config.read_timeout = Some(TIMEOUT);
    config.write_timeout = Some(TIMEOUT);
    kube::Client::try_from(config).map_err(|e| failed(&e))
}
