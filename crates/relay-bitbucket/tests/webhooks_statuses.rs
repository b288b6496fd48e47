//! Webhook CRUD and build statuses on both products.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{owner, seeded, REPO};
use relay_bitbucket::{
    BuildState, BuildStatus, Error, SecretString, WebhookChange, WebhookSpec, CLOUD_WEBHOOK_EVENTS,
    SERVER_WEBHOOK_EVENTS,
};
use relay_core::CommitHash;
use relay_testkit::Flavor;

const FLAVORS: [Flavor; 2] = [Flavor::Cloud, Flavor::Server];
const HOOK: &str = "https://relay.example.com/webhooks/bitbucket/1";

fn spec(client: &relay_bitbucket::BitbucketClient, secret: &str) -> WebhookSpec {
    WebhookSpec::relay(
        client.provider(),
        HOOK,
        SecretString::from(secret.to_owned()),
    )
}

#[tokio::test]
async fn webhook_crud() {
    for flavor in FLAVORS {
        let (bb, client) = seeded(flavor, 0).await;
        let o = owner(&bb);
        // Others' hooks fill the first page, so finding ours needs paging.
        bb.add_webhook(o, REPO, "https://ci.example.com/a", &["repo:push"], None);
        bb.add_webhook(o, REPO, "https://ci.example.com/b", &["repo:push"], None);
        assert_eq!(client.find_webhook(HOOK).await.unwrap(), None);

        let created = client
            .create_webhook(&spec(&client, "first"))
            .await
            .unwrap();
        let wanted = match flavor {
            Flavor::Cloud => CLOUD_WEBHOOK_EVENTS,
            Flavor::Server => SERVER_WEBHOOK_EVENTS,
        };
        assert_eq!(client.webhook_events(), wanted);
        assert!(created.missing_events(wanted).is_empty());
        assert!(created.active);
        if flavor == Flavor::Cloud {
            assert!(created.id.starts_with('{'));
            assert_eq!(created.secret_set, Some(true));
        }
        let stored = bb.webhooks(o, REPO);
        assert_eq!(stored.len(), 3);
        assert_eq!(stored[2].secret.as_deref(), Some("first"));

        let found = client
            .find_webhook(&format!("{HOOK}/"))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(found.id, created.id, "{flavor:?}");
        assert_eq!(client.list_webhooks().await.unwrap().len(), 3);

        // Update: new secret and fewer events; upsert finds it rather than adding one.
        let mut narrower = spec(&client, "second");
        narrower.events.truncate(1);
        let updated = client.update_webhook(&created.id, &narrower).await.unwrap();
        assert_eq!(updated.events.len(), 1);
        let change = client
            .upsert_webhook(&spec(&client, "third"))
            .await
            .unwrap();
        assert!(matches!(change, WebhookChange::Updated(_)), "{change:?}");
        assert!(change.webhook().missing_events(wanted).is_empty());
        let stored = bb.webhooks(o, REPO);
        assert_eq!(stored.len(), 3);
        assert_eq!(stored[2].secret.as_deref(), Some("third"));

        client.delete_webhook(&created.id).await.unwrap();
        assert_eq!(client.find_webhook(HOOK).await.unwrap(), None);
        let again = client.delete_webhook(&created.id).await.unwrap_err();
        assert!(matches!(again, Error::NotFound { .. }), "{again:?}");
        let change = client
            .upsert_webhook(&spec(&client, "fourth"))
            .await
            .unwrap();
        assert!(matches!(change, WebhookChange::Created(_)));
    }
}

#[tokio::test]
async fn invalid_webhooks_are_rejected_with_bitbucket_s_message() {
    for flavor in FLAVORS {
        let (_bb, client) = seeded(flavor, 0).await;
        let mut bad = spec(&client, "s");
        bad.url = "not a url".into();
        let err = client.create_webhook(&bad).await.unwrap_err();
        match &err {
            Error::Rejected {
                status: 400,
                message,
            } => {
                assert!(message.as_deref().unwrap_or("").contains("url"), "{err}")
            }
            other => panic!("{flavor:?}: {other:?}"),
        }
    }
}

#[tokio::test]
async fn build_statuses_are_recorded_and_overwritten_by_key() {
    for flavor in FLAVORS {
        let (bb, client) = seeded(flavor, 0).await;
        let o = owner(&bb);
        let head = bb.branch_head(o, REPO, "main").unwrap();
        let commit = CommitHash::parse(&head).unwrap();
        let mut status = BuildStatus {
            key: "relay-main".into(),
            state: BuildState::InProgress,
            url: "https://main.preview.example.com".into(),
            name: Some("preview: main".into()),
            description: Some("deploying".into()),
        };
        client.set_build_status(&commit, &status).await.unwrap();
        status.state = BuildState::Successful;
        client.set_build_status(&commit, &status).await.unwrap();
        let recorded = bb.statuses(o, REPO, &head);
        assert_eq!(recorded.len(), 1, "{flavor:?}");
        assert_eq!(recorded[0].state, "SUCCESSFUL");
        assert_eq!(recorded[0].writes, 2);
        assert_eq!(
            recorded[0].url.as_deref(),
            Some("https://main.preview.example.com")
        );
        assert_eq!(recorded[0].name.as_deref(), Some("preview: main"));

        status.key = "relay-other".into();
        status.state = BuildState::Stopped;
        client.set_build_status(&commit, &status).await.unwrap();
        let stopped = bb
            .statuses(o, REPO, &head)
            .into_iter()
            .find(|s| s.key == "relay-other")
            .unwrap();
        let expected = if flavor == Flavor::Cloud {
            "STOPPED"
        } else {
            "CANCELLED"
        };
        assert_eq!(stopped.state, expected);

        let unknown = CommitHash::parse("0123456789abcdef0123456789abcdef01234567").unwrap();
        let err = client
            .set_build_status(&unknown, &status)
            .await
            .unwrap_err();
        assert!(matches!(err, Error::NotFound { .. }), "{err:?}");

        bb.set_status_write(false);
        let err = client.set_build_status(&commit, &status).await.unwrap_err();
        assert!(matches!(err, Error::Forbidden { .. }), "{err:?}");
    }
}
