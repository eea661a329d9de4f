//! My settings: an IAM user's own OpsWorks profile — their SSH public key, through
//! DescribeMyUserProfile and UpdateMyUserProfile (allowed by the profile's AllowSelfManagement,
//! or a policy) — and, when their policies allow it, a link to change their password.

use std::collections::HashMap;

use axum::extract::Query;
use axum::response::Response;
use serde_json::json;

use crate::Signed;
use crate::form::SignedForm;
use crate::iam::{self, Shown};
use crate::render::see_other;

/// `GET /console/settings`: one's own profile.
pub async fn settings(signed: Signed, Query(q): Query<HashMap<String, String>>) -> Response {
    settings_page(&signed, q.contains_key("saved"), None).await
}

async fn settings_page(signed: &Signed, saved: bool, error: Option<Shown>) -> Response {
    if signed.me.root {
        return iam::error_page(
            signed,
            Shown::form(
                "The account's root has no OpsWorks user profile; the Users page sets users' keys.",
            ),
        );
    }
    let profile = match signed.call("DescribeMyUserProfile", json!({})).await {
        Ok(v) => v["UserProfile"].clone(),
        Err(e) => return iam::error_page(signed, e.into()),
    };
    let may_update = signed.may_account("UpdateMyUserProfile");
    let may_password = signed.allowed("iam:UpdateLoginProfile", &signed.me.arn);
    let status = error.as_ref().map(Shown::status);
    let mut r = signed.render(
        "settings.html",
        json!({ "profile": profile, "may_update": may_update, "may_password": may_password,
                "saved": saved, "error": error.map(|e| e.value()) }),
    );
    if let Some(status) = status {
        *r.status_mut() = status;
    }
    r
}

/// `POST /console/settings`: UpdateMyUserProfile with the new SSH public key (empty: none).
pub async fn update_settings(SignedForm(signed, form): SignedForm) -> Response {
    match signed
        .call(
            "UpdateMyUserProfile",
            json!({ "SshPublicKey": form.get("SshPublicKey") }),
        )
        .await
    {
        Ok(_) => see_other("/console/settings?saved=1"),
        Err(e) => settings_page(&signed, false, Some(e.into())).await,
    }
}
