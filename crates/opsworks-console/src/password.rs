//! An IAM user's new console password: forced first when their login profile asks for one
//! (`PasswordResetRequired`; the session opens nothing else until it is set), or chosen from My
//! settings. The current password is checked again (in the hashing pool, under the sign-in
//! limits), then the change is IAM's `UpdateLoginProfile` for the user as themselves, so it
//! takes their policies (a user created with "may change their password" has one) and is
//! audited under their ARN. The session carries on under the new password; others end.

use std::collections::HashMap;
use std::time::Instant;

use axum::extract::Query;
use axum::response::Response;
use serde_json::json;

use opsworks_model::resource::IamUser;

use crate::Signed;
use crate::auth::profile_mark;
use crate::form::SignedForm;
use crate::iam::Shown;
use crate::render::{safe_path, see_other};
use crate::session::ClientAddr;
use crate::signin::account_key;

/// `GET /console/password?next=..`: the form.
pub async fn password_page(signed: Signed, Query(q): Query<HashMap<String, String>>) -> Response {
    let next = q.get("next").map(String::as_str).unwrap_or("/console/");
    form(&signed, next, None)
}

fn form(signed: &Signed, next: &str, error: Option<Shown>) -> Response {
    if signed.me.root {
        return see_other("/console/");
    }
    let status = error.as_ref().map(Shown::status);
    let mut r = signed.render(
        "password.html",
        json!({ "must_reset": signed.must_reset, "next": safe_path(next),
                "error": error.map(|e| e.value()) }),
    );
    if let Some(status) = status {
        *r.status_mut() = status;
    }
    r
}

/// `POST /console/password`: checks the current password and that the new one was typed twice
/// alike, then UpdateLoginProfile as the user (new password, no reset pending).
pub async fn change_password(
    ClientAddr(addr): ClientAddr,
    SignedForm(signed, f): SignedForm,
) -> Response {
    let next = f.get("next");
    let (Some(user_id), false) = (signed.user_id.clone(), signed.me.root) else {
        return see_other("/console/");
    };
    let console = signed.console().clone();
    let name = signed.me.name.clone();
    let attempt = match console
        .limits()
        .begin(addr, &account_key(&name), Instant::now())
    {
        Ok(a) => a,
        Err(wait) => {
            let secs = crate::limits::seconds(wait);
            let e = Shown::form(format!("Too many wrong passwords. Try again in {secs} s."));
            return form(&signed, &next, Some(e));
        }
    };
    let current = f.get("CurrentPassword");
    // The user's hash as it is now, checked in the console's hashing pool, on a task of its own
    // (a client hanging up cannot free the turn while the hash runs).
    let right = match console.app().find::<IamUser>(&user_id).await {
        Ok(user) => match user.and_then(|u| u.login_profile.clone()) {
            Some(p) => {
                let console = console.clone();
                tokio::spawn(async move {
                    console
                        .password()
                        .verify_hash(&p.password_hash, current)
                        .await
                })
                .await
                .map_err(|e| e.to_string())
            }
            None => Ok(false),
        },
        Err(e) => Err(e.to_string()),
    };
    match right {
        Ok(true) => console.limits().succeeded(attempt),
        Ok(false) => {
            let e = Shown::form("The current password is not right.");
            return form(&signed, &next, Some(e));
        }
        Err(e) => return form(&signed, &next, Some(Shown::form(e))),
    }
    let new = f.get("Password");
    if new != f.get("Confirm") {
        let e = Shown::form("The two new passwords differ.");
        return form(&signed, &next, Some(e));
    }
    let changed = signed
        .iam(
            "UpdateLoginProfile",
            &[
                ("UserName", &name),
                ("Password", &new),
                ("PasswordResetRequired", "false"),
            ],
        )
        .await;
    if let Err(e) = changed {
        return form(&signed, &next, Some(e.into()));
    }
    // This session carries on under the new password (any other of the user's ends).
    if let Ok(Some(user)) = console.app().find::<IamUser>(&user_id).await
        && let Some(p) = &user.login_profile
    {
        console.sessions().remark(
            signed.token(),
            profile_mark(&p.create_date, &p.password_hash),
        );
    }
    see_other(safe_path(&next))
}
