//! The users API: list, get, patch with version, search by e-mail.

use std::collections::HashSet;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use gcbulk_core::change::UserState;
use http::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::Server;
use crate::model::config::ConflictStyle;
use crate::model::wire::Answer;
use crate::model::{Address, User, UserRef};

/// The most ids one `GET /api/v2/users` may name.
const MAX_IDS: usize = 100;
/// The largest page of `GET /api/v2/users`.
const MAX_LIST_PAGE: u64 = 500;
/// The largest page of a search.
const MAX_SEARCH_PAGE: u64 = 100;
/// The page size when none is asked for.
const DEFAULT_PAGE: u64 = 25;

/// Fields of `UpdateUser` the model keeps verbatim in [`User::extra`].
const KEPT_AS_IS: &[&str] = &[
    "chat",
    "images",
    "profileSkills",
    "groups",
    "acdAutoAnswer",
    "certifications",
    "biography",
    "employerInfo",
];

/// A user as an answer shows it: the stored fields and its `selfUri`.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Shown<'a> {
    #[serde(flatten)]
    user: &'a User,
    self_uri: String,
}

impl<'a> Shown<'a> {
    fn new(user: &'a User) -> Self {
        Self {
            user,
            self_uri: user.self_uri(),
        }
    }
}

/// A page of `GET /api/v2/users`.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ListPage<'a> {
    entities: Vec<Shown<'a>>,
    page_size: u64,
    page_number: u64,
    total: u64,
    first_uri: String,
    self_uri: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    next_uri: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    previous_uri: Option<String>,
    last_uri: String,
    page_count: u64,
}

/// The body of `POST /api/v2/users/search`.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct SearchRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    page_size: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    page_number: Option<u64>,
    #[serde(default)]
    query: Vec<Criterion>,
    #[serde(flatten)]
    rest: Map<String, Value>,
}

/// One criterion of a search: these fields, compared this way, with these values.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct Criterion {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    fields: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    value: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    values: Vec<String>,
}

/// A page of search results.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct SearchPage<'a> {
    total: u64,
    page_count: u64,
    page_size: u64,
    page_number: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    previous_page: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    next_page: Option<String>,
    types: [&'static str; 1],
    results: Vec<Shown<'a>>,
}

/// A refusal worth a 400: the message to show.
struct BadRequest(String);

impl Server {
    /// `GET /api/v2/users`: a page of users, optionally only the named ids, by state.
    pub(super) fn list_users(&self, query: &str, correlation_id: &str) -> Answer {
        let params: Vec<(String, String)> = form_urlencoded::parse(query.as_bytes())
            .into_owned()
            .collect();
        match self.list_page(&params) {
            Ok(page) => Answer::json(StatusCode::OK, &page),
            Err(BadRequest(message)) => bad_request(&message, correlation_id),
        }
    }

    fn list_page(&self, params: &[(String, String)]) -> Result<ListPage<'_>, BadRequest> {
        let param = |name: &str| {
            params
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.as_str())
        };
        let page_size = number(param("pageSize"), "pageSize", DEFAULT_PAGE, MAX_LIST_PAGE)?;
        let page_number = number(param("pageNumber"), "pageNumber", 1, u64::MAX)?;
        let state = param("state").unwrap_or("active");
        let wanted = |user: &User| match state {
            "any" => true,
            other => user.state.as_str() == other,
        };
        if !matches!(state, "active" | "inactive" | "deleted" | "any") {
            return Err(BadRequest(format!(
                "Value [{state}] is not valid for field state."
            )));
        }

        let ids: Vec<&str> = params
            .iter()
            .filter(|(k, _)| k == "id")
            .flat_map(|(_, v)| v.split(','))
            .filter(|id| !id.is_empty())
            .collect();
        if ids.len() > MAX_IDS {
            return Err(BadRequest(format!(
                "At most {MAX_IDS} ids may be requested at once."
            )));
        }

        // Genesys cannot page through more than so many inactive users.
        let reach = page_size.saturating_mul(page_number);
        if state == "inactive" && reach > self.config.inactive_listing_limit {
            return Err(BadRequest(format!(
                "Listing inactive users is limited to the first {} results.",
                self.config.inactive_listing_limit
            )));
        }

        let matching: Vec<&User> = if ids.is_empty() {
            self.users.iter().filter(|u| wanted(u)).collect()
        } else {
            let mut indices: Vec<usize> = ids
                .iter()
                .filter_map(|id| self.by_id.get(*id))
                .copied()
                .collect();
            indices.sort_unstable();
            indices.dedup();
            indices
                .iter()
                .map(|&i| &self.users[i])
                .filter(|u| wanted(u))
                .collect()
        };

        let total = matching.len() as u64;
        let page_count = total.div_ceil(page_size);
        let skip =
            usize::try_from((page_number - 1).saturating_mul(page_size)).unwrap_or(usize::MAX);
        let take = usize::try_from(page_size).unwrap_or(usize::MAX);
        let entities = matching
            .into_iter()
            .skip(skip)
            .take(take)
            .map(Shown::new)
            .collect();

        let uri = |n: u64| {
            let mut uri = form_urlencoded::Serializer::new(String::new());
            uri.append_pair("pageSize", &page_size.to_string());
            uri.append_pair("pageNumber", &n.to_string());
            for (k, v) in params
                .iter()
                .filter(|(k, _)| k != "pageSize" && k != "pageNumber")
            {
                uri.append_pair(k, v);
            }
            format!("/api/v2/users?{}", uri.finish())
        };
        Ok(ListPage {
            entities,
            page_size,
            page_number,
            total,
            first_uri: uri(1),
            self_uri: uri(page_number),
            next_uri: (page_number < page_count).then(|| uri(page_number + 1)),
            previous_uri: (page_number > 1).then(|| uri(page_number - 1)),
            last_uri: uri(page_count.max(1)),
            page_count,
        })
    }

    /// `GET /api/v2/users/{id}`: deleted users are found only with `state=deleted` or `any`.
    pub(super) fn get_user(&self, id: &str, query: &str, correlation_id: &str) -> Answer {
        let state = form_urlencoded::parse(query.as_bytes())
            .find(|(k, _)| k == "state")
            .map(|(_, v)| v.into_owned());
        let visible = |user: &&User| match state.as_deref() {
            Some("deleted") => user.state == UserState::Deleted,
            Some("any") => true,
            _ => user.state != UserState::Deleted,
        };

        match self.user(id).filter(visible) {
            Some(user) => Answer::json(StatusCode::OK, &Shown::new(user)),
            None => not_found(id, correlation_id),
        }
    }

    /// `PATCH /api/v2/users/{id}`: the body names the current `version`; `state` goes alone.
    pub(super) fn patch_user(&mut self, id: &str, body: &[u8], correlation_id: &str) -> Answer {
        let Some(&index) = self.by_id.get(id) else {
            return not_found(id, correlation_id);
        };
        let fields = match serde_json::from_slice::<Value>(body) {
            Ok(Value::Object(fields)) => fields,
            _ => return bad_request("The request body is not a JSON object.", correlation_id),
        };

        let current = &self.users[index];
        let version = match fields.get("version") {
            Some(Value::Number(n)) => n.as_u64(),
            Some(Value::Null) | None => {
                return bad_request("The version of the user is required.", correlation_id);
            }
            Some(_) => None,
        };
        let Some(version) = version else {
            return bad_request("The version must be a whole number.", correlation_id);
        };
        if version != current.version {
            return self.conflict(version, current.version, correlation_id);
        }

        let mut updated = current.clone();
        if let Err(BadRequest(message)) = self.apply(&mut updated, &fields) {
            return bad_request(&message, correlation_id);
        }
        updated.version += 1;
        tracing::debug!(user_id = %updated.id, version = updated.version, "user updated");

        self.users[index] = updated;
        Answer::json(StatusCode::OK, &Shown::new(&self.users[index]))
    }

    fn conflict(&self, given: u64, current: u64, correlation_id: &str) -> Answer {
        match self.config.conflict {
            ConflictStyle::Conflict => Answer::error(
                StatusCode::CONFLICT,
                "general.conflict",
                "The version number of the modified resource must match the version number in \
                 the database.",
                correlation_id,
            ),
            ConflictStyle::BadRequest => bad_request(
                &format!("The version {given} does not match the current version {current}."),
                correlation_id,
            ),
        }
    }

    /// Applies an `UpdateUser` body to a copy of the user; nothing changes on a refusal.
    fn apply(&self, user: &mut User, fields: &Map<String, Value>) -> Result<(), BadRequest> {
        if fields.contains_key("state") {
            let others: Vec<&str> = fields
                .keys()
                .map(String::as_str)
                .filter(|k| !matches!(*k, "state" | "version" | "id"))
                .collect();
            if !others.is_empty() {
                return Err(BadRequest(format!(
                    "The state of a user must be updated on its own, not with {}.",
                    others.join(", ")
                )));
            }
        }

        for (key, value) in fields {
            match key.as_str() {
                "name" => user.name = required_text(key, value)?,
                "email" => user.email = Some(required_text(key, value)?),
                "username" => user.username = Some(required_text(key, value)?),
                "title" => user.title = optional_text(key, value)?,
                "department" => user.department = optional_text(key, value)?,
                "preferredName" => user.preferred_name = optional_text(key, value)?,
                "manager" => user.manager = self.manager(&user.id, value)?,
                "addresses" => merge_addresses(&mut user.addresses, value)?,
                "locations" => match value {
                    Value::Array(locations) => user.locations.clone_from(locations),
                    _ => return Err(BadRequest("locations must be a list.".to_owned())),
                },
                "state" => {
                    let text = required_text(key, value)?;
                    user.state = UserState::parse(&text).ok_or_else(|| {
                        BadRequest(format!("Value [{text}] is not valid for field state."))
                    })?;
                }
                other if KEPT_AS_IS.contains(&other) => {
                    user.extra.insert(other.to_owned(), value.clone());
                }
                // version was checked; id, selfUri, division and unknown fields are not updatable.
                _ => {}
            }
        }
        Ok(())
    }

    /// The new manager: a user id, or empty or null to remove it.
    fn manager(&self, user_id: &str, value: &Value) -> Result<Option<UserRef>, BadRequest> {
        let id = match value {
            Value::Null => return Ok(None),
            Value::String(id) if id.is_empty() => return Ok(None),
            Value::String(id) => id,
            _ => return Err(BadRequest("manager must be a user id.".to_owned())),
        };
        if id == user_id {
            return Err(BadRequest("A user cannot be their own manager.".to_owned()));
        }
        if !self.by_id.contains_key(id) {
            return Err(BadRequest(format!("The manager {id} was not found.")));
        }
        Ok(Some(UserRef { id: id.clone() }))
    }

    /// `POST /api/v2/users/search`.
    pub(super) fn search_users(&self, body: &[u8], correlation_id: &str) -> Answer {
        match serde_json::from_slice::<SearchRequest>(body) {
            Ok(search) => self.search(search, correlation_id),
            Err(_) => bad_request("The search request is not valid JSON.", correlation_id),
        }
    }

    /// `GET /api/v2/users/search?q64=...`: a later page, the request encoded as `nextPage` gave it.
    pub(super) fn search_users_q64(&self, query: &str, correlation_id: &str) -> Answer {
        let q64 = form_urlencoded::parse(query.as_bytes())
            .find(|(k, _)| k == "q64")
            .map(|(_, v)| v);
        let decoded = q64.and_then(|q| STANDARD.decode(q.as_bytes()).ok());
        match decoded {
            Some(body) => self.search_users(&body, correlation_id),
            None => bad_request(
                "q64 must be a base64-encoded search request.",
                correlation_id,
            ),
        }
    }

    fn search(&self, search: SearchRequest, correlation_id: &str) -> Answer {
        let page_size = search.page_size.unwrap_or(DEFAULT_PAGE);
        let page_number = search.page_number.unwrap_or(1);
        if !(1..=MAX_SEARCH_PAGE).contains(&page_size) || page_number == 0 {
            let message =
                format!("pageSize must be 1 to {MAX_SEARCH_PAGE}, pageNumber at least 1.");
            return bad_request(&message, correlation_id);
        }
        let matchers = match search
            .query
            .iter()
            .map(Matcher::new)
            .collect::<Result<Vec<_>, _>>()
        {
            Ok(matchers) => matchers,
            Err(BadRequest(message)) => return bad_request(&message, correlation_id),
        };

        let matching: Vec<&User> = self
            .users
            .iter()
            .filter(|u| u.state != UserState::Deleted)
            .filter(|u| matchers.iter().all(|m| m.matches(u)))
            .collect();
        let total = matching.len() as u64;
        let page_count = total.div_ceil(page_size);
        let skip = usize::try_from((page_number - 1) * page_size).unwrap_or(usize::MAX);
        let take = usize::try_from(page_size).unwrap_or(usize::MAX);

        let page_uri = |n: u64| {
            let request = SearchRequest {
                page_number: Some(n),
                ..search.clone()
            };
            let json = serde_json::to_vec(&request).unwrap_or_default();
            let mut query = form_urlencoded::Serializer::new(String::new());
            query.append_pair("q64", &STANDARD.encode(json));
            format!("/api/v2/users/search?{}", query.finish())
        };
        Answer::json(
            StatusCode::OK,
            &SearchPage {
                total,
                page_count,
                page_size,
                page_number,
                previous_page: (page_number > 1).then(|| page_uri(page_number - 1)),
                next_page: (page_number < page_count).then(|| page_uri(page_number + 1)),
                types: ["users"],
                results: matching
                    .into_iter()
                    .skip(skip)
                    .take(take)
                    .map(Shown::new)
                    .collect(),
            },
        )
    }
}

/// A search criterion made ready to match: values lowered once, not once per user.
struct Matcher {
    kind: MatchKind,
    fields: Vec<String>,
    values: HashSet<String>,
}

#[derive(Clone, Copy)]
enum MatchKind {
    Exact,
    Contains,
    StartsWith,
}

impl Matcher {
    fn new(criterion: &Criterion) -> Result<Self, BadRequest> {
        let kind = match criterion.kind.to_ascii_uppercase().as_str() {
            "EXACT" => MatchKind::Exact,
            "CONTAINS" | "QUERY_STRING" => MatchKind::Contains,
            "STARTS_WITH" => MatchKind::StartsWith,
            other => return Err(BadRequest(format!("Search type {other} is not supported."))),
        };
        for field in &criterion.fields {
            if !SEARCHABLE.contains(&field.as_str()) {
                return Err(BadRequest(format!(
                    "Search field {field} is not supported."
                )));
            }
        }
        let values = criterion
            .value
            .iter()
            .chain(&criterion.values)
            .map(|v| v.to_lowercase());
        Ok(Self {
            kind,
            fields: criterion.fields.clone(),
            values: values.collect(),
        })
    }

    /// Any field matches any value, without regard to case.
    fn matches(&self, user: &User) -> bool {
        self.fields.iter().any(|field| {
            let Some(text) = field_of(user, field) else {
                return false;
            };
            let text = text.to_lowercase();
            match self.kind {
                MatchKind::Exact => self.values.contains(&text),
                MatchKind::Contains => self.values.iter().any(|v| text.contains(v.as_str())),
                MatchKind::StartsWith => self.values.iter().any(|v| text.starts_with(v.as_str())),
            }
        })
    }
}

/// The fields a search may name.
const SEARCHABLE: &[&str] = &[
    "id",
    "name",
    "email",
    "username",
    "title",
    "department",
    "preferredName",
    "state",
];

/// The value of a searchable field, if the user has one.
fn field_of<'a>(user: &'a User, field: &str) -> Option<&'a str> {
    match field {
        "id" => Some(user.id.as_str()),
        "name" => Some(user.name.as_str()),
        "email" => user.email.as_deref(),
        "username" => user.username.as_deref(),
        "title" => user.title.as_deref(),
        "department" => user.department.as_deref(),
        "preferredName" => user.preferred_name.as_deref(),
        "state" => Some(user.state.as_str()),
        _ => None,
    }
}

/// Replaces the entry of each given media type and type; entries not given stay.
fn merge_addresses(addresses: &mut Vec<Address>, value: &Value) -> Result<(), BadRequest> {
    let given: Vec<Address> = serde_json::from_value(value.clone())
        .map_err(|e| BadRequest(format!("addresses are not valid: {e}")))?;
    for address in given {
        let same = |a: &Address| a.media_type == address.media_type && a.kind == address.kind;
        match addresses.iter_mut().find(|a| same(a)) {
            Some(existing) => *existing = address,
            None => addresses.push(address),
        }
    }
    Ok(())
}

fn required_text(key: &str, value: &Value) -> Result<String, BadRequest> {
    match value {
        Value::String(text) if !text.trim().is_empty() => Ok(text.clone()),
        _ => Err(BadRequest(format!("{key} must be a non-empty string."))),
    }
}

/// Text or nothing: an empty string or null removes the value.
fn optional_text(key: &str, value: &Value) -> Result<Option<String>, BadRequest> {
    match value {
        Value::Null => Ok(None),
        Value::String(text) if text.is_empty() => Ok(None),
        Value::String(text) => Ok(Some(text.clone())),
        _ => Err(BadRequest(format!("{key} must be a string."))),
    }
}

/// A whole-number query parameter within `1..=max`.
fn number(given: Option<&str>, name: &str, default: u64, max: u64) -> Result<u64, BadRequest> {
    let Some(text) = given else {
        return Ok(default);
    };
    match text.parse::<u64>() {
        Ok(n) if (1..=max).contains(&n) => Ok(n),
        _ => Err(BadRequest(format!(
            "Value [{text}] is not valid for field type [{name}]."
        ))),
    }
}

fn bad_request(message: &str, correlation_id: &str) -> Answer {
    Answer::error(
        StatusCode::BAD_REQUEST,
        "bad.request",
        message,
        correlation_id,
    )
}

fn not_found(id: &str, correlation_id: &str) -> Answer {
    let message = format!("The user {id} was not found.");
    Answer::error(StatusCode::NOT_FOUND, "not.found", &message, correlation_id)
}
