use super::*;

fn now() -> Timestamp {
    chrono::DateTime::from_timestamp(1_800_000_000, 0).unwrap()
}

fn new(name: &str, ttl: Option<u64>) -> NewApiToken {
    NewApiToken {
        name: name.into(),
        scopes: vec![Scope::parse("job:*").unwrap()],
        profiles: vec!["yolo".into()],
        ttl_secs: ttl,
    }
}

#[test]
fn issued_token_checks_and_keeps_no_secret() {
    let (rec, text) = new("ci", Some(3600)).issue(now()).unwrap();
    let (id, secret) = split_token(text.expose()).unwrap();
    assert_eq!(id, rec.id);
    assert!(!rec.hash.contains(secret));
    assert!(!serde_json::to_string(&rec).unwrap().contains(&rec.hash));
    rec.check(secret, now()).unwrap();
    assert_eq!(rec.check("nope", now()), Err(TokenRefusal::Unknown));
    assert!(rec.allows(Required::new("job", "create")));
    assert!(!rec.allows(Required::new("sandbox", "read")));
    assert!(rec.allows_profile("yolo") && !rec.allows_profile("other"));
}

#[test]
fn expired_and_revoked_are_refused_with_their_reason() {
    let (mut rec, text) = new("ci", Some(60)).issue(now()).unwrap();
    let (_, secret) = split_token(text.expose()).unwrap();
    let later = now() + chrono::Duration::seconds(61);
    assert_eq!(
        rec.check(secret, later).unwrap_err().code(),
        "token_expired"
    );
    rec.revoked_at = Some(now());
    assert_eq!(
        rec.check(secret, now()).unwrap_err().code(),
        "token_revoked"
    );
    assert!(!rec.is_active(now()));
}

#[test]
fn bad_inputs_are_typed() {
    assert!(matches!(
        new("a b", None).issue(now()),
        Err(IssueError::Name(_))
    ));
    assert!(matches!(
        new("", None).issue(now()),
        Err(IssueError::Name(_))
    ));
    assert!(matches!(
        new("x", Some(0)).issue(now()),
        Err(IssueError::Ttl)
    ));
    let mut n = new("x", None);
    n.scopes.clear();
    assert_eq!(n.issue(now()).unwrap_err(), IssueError::NoScope);
    assert_eq!(split_token("Bearer x"), Err(TokenRefusal::Malformed));
    assert_eq!(split_token("alab_zz_abc"), Err(TokenRefusal::Malformed));
    assert_eq!(
        split_token("alab_0123456789ab_"),
        Err(TokenRefusal::Malformed)
    );
}

#[test]
fn ttl_texts() {
    assert_eq!(
        parse_ttl("30d").unwrap(),
        Some(Duration::from_secs(30 * 86_400))
    );
    assert_eq!(parse_ttl("45s").unwrap(), Some(Duration::from_secs(45)));
    assert_eq!(parse_ttl("never").unwrap(), None);
    assert!(parse_ttl("0d").is_err());
    assert!(parse_ttl("3y").unwrap_err().contains("unknown unit"));
    assert!(parse_ttl("d").is_err());
}
