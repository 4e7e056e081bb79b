//! Contract checks: provider requests validated against the official specifications in
//! `tests/specs/` (copies of the workspace's `../shared/specs/`, so a clone alone can run them).

use std::sync::OnceLock;

use serde_json::{Map, Value, json};

fn specs_dir() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/specs")
}

fn meta_spec() -> &'static Value {
    static SPEC: OnceLock<Value> = OnceLock::new();
    SPEC.get_or_init(|| {
        let text =
            std::fs::read_to_string(specs_dir().join("whatsapp_business_messaging_v23.0.yaml"))
                .unwrap();
        let yaml: Value = serde_yaml_ng::from_str(&text).unwrap();
        flatten_all_of(&yaml, &yaml["components"]["schemas"])
    })
}

fn twilio_spec() -> &'static Value {
    static SPEC: OnceLock<Value> = OnceLock::new();
    SPEC.get_or_init(|| {
        let text = std::fs::read_to_string(specs_dir().join("twilio_api_v2010.json")).unwrap();
        serde_json::from_str(&text).unwrap()
    })
}

/// Meta's message schemas put `additionalProperties: false` inside one branch of an `allOf`,
/// which a strict validator reads as "no properties from the other branches". Merging each
/// `allOf` into one object schema gives the meaning the document intends.
fn flatten_all_of(node: &Value, schemas: &Value) -> Value {
    match node {
        Value::Object(map) => {
            if let Some(Value::Array(parts)) = map.get("allOf") {
                let mut properties = Map::new();
                let mut required: Vec<Value> = Vec::new();
                let mut closed = false;
                for part in parts {
                    let resolved = match part.get("$ref").and_then(Value::as_str) {
                        Some(r) => &schemas[r.trim_start_matches("#/components/schemas/")],
                        None => part,
                    };
                    let flat = flatten_all_of(resolved, schemas);
                    if let Some(Value::Object(p)) = flat.get("properties") {
                        properties.extend(p.clone());
                    }
                    if let Some(Value::Array(r)) = flat.get("required") {
                        required.extend(r.iter().cloned());
                    }
                    closed |= flat.get("additionalProperties") == Some(&Value::Bool(false));
                }
                let mut merged =
                    json!({ "type": "object", "properties": properties, "required": required });
                if closed {
                    merged["additionalProperties"] = Value::Bool(false);
                }
                return merged;
            }
            Value::Object(
                map.iter()
                    .map(|(k, v)| (k.clone(), flatten_all_of(v, schemas)))
                    .collect(),
            )
        }
        Value::Array(items) => {
            Value::Array(items.iter().map(|v| flatten_all_of(v, schemas)).collect())
        }
        other => other.clone(),
    }
}

/// Validates a Graph API send body against one of the spec's message schemas
/// (`TextMessage`, `InteractiveMessage`, `TemplateMessage`).
pub fn assert_meta_valid(schema: &str, body: &Value) {
    let spec = meta_spec();
    let root = json!({ "$ref": format!("#/components/schemas/{schema}"), "components": spec["components"] });
    let validator = jsonschema::validator_for(&root).expect("the spec compiles");
    let errors: Vec<String> = validator
        .iter_errors(body)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect();
    assert!(
        errors.is_empty(),
        "{schema} violations: {errors:#?}\nbody: {body:#}"
    );
}

/// Validates a Twilio Messages.json form: every field is one the spec declares, with its type.
pub fn assert_twilio_valid(form: &[(String, String)]) {
    let spec = twilio_spec();
    let schema = &spec["paths"]["/2010-04-01/Accounts/{AccountSid}/Messages.json"]["post"]["requestBody"]
        ["content"]["application/x-www-form-urlencoded"]["schema"];
    let declared = schema["properties"].as_object().unwrap();
    for (name, _) in form {
        assert!(
            declared.contains_key(name),
            "Twilio's spec has no form field {name}"
        );
    }
    let instance = Value::Object(
        form.iter()
            .map(|(k, v)| (k.clone(), Value::String(v.clone())))
            .collect(),
    );
    // The schema's $refs point into the document's components.
    let mut root = schema.clone();
    root["components"] = spec["components"].clone();
    let validator = jsonschema::validator_for(&root).expect("the spec compiles");
    let errors: Vec<String> = validator
        .iter_errors(&instance)
        .map(|e| e.to_string())
        .collect();
    assert!(
        errors.is_empty(),
        "CreateMessageRequest violations: {errors:#?}"
    );
    assert!(form.iter().any(|(k, _)| k == "To"), "To is required");
    assert!(
        form.iter().any(|(k, _)| k == "Body" || k == "ContentSid"),
        "a message needs Body or ContentSid"
    );
}

#[test]
fn the_checks_catch_a_bad_request() {
    let body = json!({ "messaging_product": "whatsapp", "recipient_type": "individual", "to": "1", "type": "text",
        "text": { "body": "hi" }, "surprise": true });
    let result = std::panic::catch_unwind(|| assert_meta_valid("TextMessage", &body));
    assert!(result.is_err(), "an unknown field is refused");
    let result = std::panic::catch_unwind(|| {
        assert_twilio_valid(&[("To".into(), "+1".into()), ("Bodyy".into(), "x".into())])
    });
    assert!(result.is_err(), "a misspelt field is refused");
}
