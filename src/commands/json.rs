//! Enough JSON for `status --json`, without a dependency for it.

pub(super) enum Json {
    Null,
    Bool(bool),
    Num(u64),
    Str(String),
    Array(Vec<Json>),
    Object(Vec<(&'static str, Json)>),
    /// An object whose keys are data (counter labels).
    Map(Vec<(String, Json)>),
}

impl Json {
    pub(super) fn render(&self) -> String {
        match self {
            Json::Null => "null".into(),
            Json::Bool(b) => b.to_string(),
            Json::Num(n) => n.to_string(),
            Json::Str(s) => quote(s),
            Json::Array(items) => format!(
                "[{}]",
                items.iter().map(Json::render).collect::<Vec<_>>().join(",")
            ),
            Json::Object(fields) => object(fields.iter().map(|(k, v)| (*k, v))),
            Json::Map(fields) => object(fields.iter().map(|(k, v)| (k.as_str(), v))),
        }
    }
}

fn object<'a>(fields: impl Iterator<Item = (&'a str, &'a Json)>) -> String {
    let fields: Vec<String> = fields
        .map(|(k, v)| format!("{}:{}", quote(k), v.render()))
        .collect();
    format!("{{{}}}", fields.join(","))
}

fn quote(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// The whole of `status --json`.
pub(super) fn status_json(conntrack: Option<(u64, u64)>, interfaces: &[Json]) -> String {
    let ct = match conntrack {
        Some((n, max)) => Json::Object(vec![("entries", Json::Num(n)), ("max", Json::Num(max))]),
        None => Json::Null,
    };
    let items: Vec<String> = interfaces.iter().map(Json::render).collect();
    format!(
        "{{\"conntrack\":{},\"interfaces\":[{}]}}",
        ct.render(),
        items.join(",")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_is_escaped() {
        let j = Json::Object(vec![
            ("a\"b", Json::Str("x\\y\n".into())),
            ("n", Json::Null),
            ("l", Json::Array(vec![Json::Num(1), Json::Bool(true)])),
        ]);
        assert_eq!(j.render(), r#"{"a\"b":"x\\y\u000a","n":null,"l":[1,true]}"#);
        assert_eq!(
            status_json(None, &[]),
            r#"{"conntrack":null,"interfaces":[]}"#
        );
    }
}
