//! The console's routes: every page and form action, by resource family.

use axum::Router;
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};

use crate::{Console, apps, assets, deployments, events, instances, layers, live, monitoring};
use crate::{audit, groups, password, rds, settings, signin, stacks, user_actions, users};

/// The console's routes (state: [`Console`]).
pub fn routes() -> Router<Console> {
    Router::new()
        .route("/favicon.ico", get(assets::favicon))
        .route("/console", get(|| async { Redirect::to("/console/") }))
        .route("/console/static/{file}", get(assets::static_file))
        .route(
            "/console/sign-in",
            get(signin::sign_in_page).post(signin::sign_in),
        )
        .route("/console/sign-out", post(signin::sign_out))
        .route(
            "/console/password",
            get(password::password_page).post(password::change_password),
        )
        .merge(stack_routes())
        .merge(iam_routes())
        .merge(resource_routes())
        .route("/console/{*rest}", get(nothing_here).post(nothing_here))
}

fn stack_routes() -> Router<Console> {
    Router::new()
        .route("/console/", get(stacks::stacks))
        .route(
            "/console/stacks/new",
            get(stacks::new_stack).post(stacks::create_stack),
        )
        .route("/console/stacks/{id}", get(stacks::stack))
        .route(
            "/console/stacks/{id}/edit",
            get(stacks::edit_stack).post(stacks::update_stack),
        )
        .route(
            "/console/stacks/{id}/do/{action}",
            post(stacks::stack_action),
        )
        .route("/console/stacks/{id}/live", get(live::stack_events))
        .route(
            "/console/stacks/{id}/monitoring",
            get(monitoring::stack_monitoring),
        )
        .route("/console/charts/chart.svg", get(monitoring::chart))
        .route(
            "/console/stacks/{id}/events",
            get(events::stack_events_page),
        )
        .route(
            "/console/stacks/{id}/events/live",
            get(events::stack_events_live),
        )
}

fn iam_routes() -> Router<Console> {
    Router::new()
        .route("/console/users", get(users::users).post(users::create_user))
        .route("/console/users/{name}", get(users::user))
        .route(
            "/console/users/{name}/do/{action}",
            post(user_actions::user_action),
        )
        .route("/console/groups", post(groups::create_group))
        .route("/console/groups/{name}", get(groups::group))
        .route(
            "/console/groups/{name}/do/{action}",
            post(groups::group_action),
        )
        .route(
            "/console/settings",
            get(settings::settings).post(settings::update_settings),
        )
        .route("/console/audit", get(audit::audit_page))
}

fn resource_routes() -> Router<Console> {
    Router::new()
        .route(
            "/console/stacks/{id}/layers/new",
            get(layers::new_layer).post(layers::create_layer),
        )
        .route(
            "/console/layers/{id}/edit",
            get(layers::edit_layer).post(layers::update_layer),
        )
        .route("/console/layers/{id}/delete", post(layers::delete_layer))
        .route("/console/stacks/{id}/rds/register", post(rds::register))
        .route("/console/stacks/{id}/rds/deregister", post(rds::deregister))
        .route(
            "/console/stacks/{id}/instances/new",
            get(instances::new_instance).post(instances::create_instance),
        )
        .route("/console/instances/{id}", get(instances::instance))
        .route(
            "/console/instances/{id}/do/{action}",
            post(instances::instance_action),
        )
        .route(
            "/console/stacks/{id}/apps/new",
            get(apps::new_app).post(apps::create_app),
        )
        .route(
            "/console/apps/{id}/edit",
            get(apps::edit_app).post(apps::update_app),
        )
        .route(
            "/console/apps/{id}/deploy",
            get(deployments::deploy_page).post(deployments::deploy),
        )
        .route("/console/apps/{id}/delete", post(apps::delete_app))
        .route(
            "/console/stacks/{id}/deployments",
            get(deployments::deployments),
        )
        .route("/console/deployments/{id}", get(deployments::deployment))
        .route(
            "/console/deployments/{id}/live",
            get(live::deployment_events),
        )
        .route("/console/commands/{id}/log", get(deployments::command_log))
}

/// Any other path under `/console/`: a plain 404 (with the console's headers, unlike the server's
/// own fallback).
async fn nothing_here() -> Response {
    (
        StatusCode::NOT_FOUND,
        Html(
            "<!doctype html><title>Not found</title><p>There is no such console page. \
             <a href=\"/console/\">All stacks</a></p>",
        ),
    )
        .into_response()
}
