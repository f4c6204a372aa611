//! `ask_user` in the IDE (SPEC §8): the question goes to the MCP client's user as a form-mode elicitation, a text
//! field `answer`, or a choice among the question's `options`. Two protocol eras:
//!
//! - **up to 2025-11-25**: the server sends `elicitation/create` while the tool call runs ([`ask_in_ide`]); the
//!   hub path stays open beside it, and whichever answers first wins. When the hub wins, the request is cancelled
//!   (`notifications/cancelled`).
//! - **2026-07-28** (multi round-trip requests): the tool call answers `input_required` with the elicitation and the
//!   question id as `requestState` ([`input_required`]); the client asks its user and calls again with the
//!   response ([`response`]).
//!
//! Only clients that declared form elicitation get either; the others get the hub path alone.

use std::collections::BTreeMap;

use rmcp::RoleServer;
use rmcp::model::{
    ElicitRequest, ElicitRequestParams, ElicitResult, ElicitationAction, ElicitationSchema,
    EnumSchema, InputRequest, InputRequiredResult, InputResponses, PrimitiveSchemaDefinition,
    ProtocolVersion, ServerRequest, StringSchema,
};
use rmcp::service::{PeerRequestOptions, RequestContext};
use serde_json::Value;
use switchboard_core::PendingQuestion;

/// The key of the elicitation in an `input_required` result and in the responses that come back.
const INPUT_KEY: &str = "answer";
/// The form's one field.
const FIELD: &str = "answer";

/// Whether the client takes form-mode elicitation (declared at `initialize`, or in a 2026-07-28 request's
/// capabilities). A client that declared elicitation without modes means form.
pub(crate) fn form_supported(ctx: &RequestContext<RoleServer>) -> bool {
    ctx.client_capabilities()
        .and_then(|c| c.elicitation)
        .is_some_and(|e| e.form.is_some() || e.url.is_none())
}

/// Whether this request speaks 2026-07-28 or later, where the server may not send requests of its own and asks
/// for input with an `input_required` result instead.
pub(crate) fn round_trips(ctx: &RequestContext<RoleServer>) -> bool {
    ctx.protocol_version()
        .is_some_and(|v| v.as_str() >= ProtocolVersion::V_2026_07_28.as_str())
}

/// The form for `q`: a required text `answer`, or a required choice among its options.
fn params(q: &PendingQuestion) -> ElicitRequestParams {
    let field = match &q.options {
        Some(options) => {
            PrimitiveSchemaDefinition::Enum(EnumSchema::builder(options.clone()).untitled().build())
        }
        None => PrimitiveSchemaDefinition::String(StringSchema::new()),
    };
    let schema = ElicitationSchema::builder()
        .required_property(FIELD, field)
        .build()
        .unwrap_or_else(|_| ElicitationSchema::new(BTreeMap::new()));
    ElicitRequestParams::FormElicitationParams {
        meta: None,
        message: q.question.clone(),
        requested_schema: schema,
    }
}

/// What the user did with the form.
#[derive(Debug)]
pub(crate) enum Outcome {
    /// Answered: the value of the form's field.
    Answered(Value),
    /// Declined or dismissed; the question stays open on the hub path.
    Declined,
}

fn outcome(r: ElicitResult) -> Outcome {
    match (r.action, r.content) {
        (ElicitationAction::Accept, Some(c)) => match c.get(FIELD) {
            Some(v) if !v.is_null() => Outcome::Answered(v.clone()),
            _ => Outcome::Declined,
        },
        _ => Outcome::Declined,
    }
}

/// Sends the elicitation (up to 2025-11-25) and waits for the user; `None` when the client cannot be asked (the
/// request failed: the hub path is then the only one). Cancelled with the future: dropping it sends
/// `notifications/cancelled` for the request.
pub(crate) async fn ask_in_ide(
    ctx: &RequestContext<RoleServer>,
    q: &PendingQuestion,
) -> Option<Outcome> {
    let request = ServerRequest::ElicitRequest(ElicitRequest::new(params(q)));
    let handle = match ctx
        .peer
        .send_request_with_option(request, PeerRequestOptions::no_options())
        .await
    {
        Ok(h) => h,
        Err(e) => {
            tracing::debug!(error = %e, "elicitation not sent");
            return None;
        }
    };
    let mut guard = CancelOnDrop(Some((handle.peer.clone(), handle.id.clone())));
    let answer = handle.rx.await;
    guard.0 = None;
    match answer {
        Ok(Ok(rmcp::model::ClientResult::ElicitResult(r))) => Some(outcome(r)),
        other => {
            tracing::debug!(?other, "elicitation ended without a result");
            None
        }
    }
}

/// Sends `notifications/cancelled` for an elicitation still open when its future is dropped (the hub answered).
struct CancelOnDrop(Option<(rmcp::Peer<RoleServer>, rmcp::model::RequestId)>);

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        let Some((peer, id)) = self.0.take() else {
            return;
        };
        let note = rmcp::model::CancelledNotificationParam::new(
            Some(id),
            Some("answered elsewhere".into()),
        );
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(async move {
                let _ = peer.notify_cancelled(note).await;
            });
        }
    }
}

/// The 2026-07-28 answer to the first call: ask the user this form, then call again with `requestState` (the
/// question's id).
pub(crate) fn input_required(q: &PendingQuestion) -> InputRequiredResult {
    let mut requests = BTreeMap::new();
    requests.insert(
        INPUT_KEY.to_owned(),
        InputRequest::Elicitation(ElicitRequest::new(params(q))),
    );
    InputRequiredResult::new(Some(requests), Some(q.question_id.clone()))
}

/// The user's response in a 2026-07-28 retry, if it carries one.
pub(crate) fn response(responses: Option<&InputResponses>) -> Option<Outcome> {
    let v = responses?.get(INPUT_KEY)?;
    serde_json::from_value::<ElicitResult>(v.clone())
        .ok()
        .map(outcome)
}
