//! Tests of the EC2 handlers' own rules: wildcards, tags, filters.

use super::*;

#[test]
fn wildcards_match_as_ec2s() {
    assert!(wildcard("vol-*", "vol-0123"));
    assert!(wildcard("*", ""));
    assert!(wildcard("a?c", "abc"));
    assert!(!wildcard("a?c", "ac"));
    assert!(wildcard("*b*", "abc"));
    assert!(!wildcard("vol-1", "vol-12"));
}

#[test]
fn tags_come_from_the_matching_specification_only() {
    let input = json!({"TagSpecifications": [
        {"ResourceType": "volume", "Tags": [{"Key": "Name", "Value": "a"}, {"Key": "Name", "Value": "b"}]}
    ]});
    let tags = tags_of(&input, "volume").unwrap();
    assert_eq!(
        tags,
        vec![Ec2Tag {
            key: "Name".into(),
            value: "b".into()
        }]
    );
    let err = tags_of(&input, "elastic-ip").unwrap_err();
    assert_eq!(err.code(), "InvalidParameterValue");
    let bad = json!({"TagSpecifications": [{"ResourceType": "volume", "Tags": [{"Key": "aws:x", "Value": ""}]}]});
    assert!(tags_of(&bad, "volume").is_err());
    assert_eq!(tag_filter("tag:Name", &["b".into()], &tags), Some(true));
    assert_eq!(tag_filter("tag-key", &["Other".into()], &tags), Some(false));
    assert_eq!(tag_filter("domain", &[], &tags), None);
}
