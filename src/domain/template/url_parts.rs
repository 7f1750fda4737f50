//! Expressions in a URL's path and query (DESIGN.md §11.2). The stored URL
//! is normalised, so an expression may sit there percent-encoded
//! (`%7B%7B%20run.id%20%7D%7D` in a path, `{{%20run.id%20}}` in a query):
//! each one is decoded, rendered, and its value percent-encoded, so that a
//! value can neither add a path segment nor a query parameter. The host is
//! never rendered: the result must keep the job's scheme, host and port,
//! which passed the network policy when the job was written.

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, percent_decode_str, utf8_percent_encode};
use url::{Position, Url};

use super::TemplateError;

/// What a rendered value keeps as it is: RFC 3986's unreserved characters.
const VALUE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

const FIELD: &str = "target.url";

pub fn render(
    url: &Url,
    mut render_one: impl FnMut(&str) -> Result<String, TemplateError>,
) -> Result<Url, TemplateError> {
    let head = &url[..Position::BeforePath];
    if head.contains("{{") || head.contains("{%") {
        return Err(TemplateError::at(
            FIELD,
            "only the path and query may hold expressions, never the host",
        ));
    }
    let mut rest = &url[Position::BeforePath..];
    let mut out = head.to_string();
    while let Some((start, open_len)) = find_any(rest, &["{{", "%7B%7B", "%7b%7b"]) {
        out.push_str(&rest[..start]);
        let after_open = &rest[start + open_len..];
        let (end, close_len) =
            find_any(after_open, &["}}", "%7D%7D", "%7d%7d"]).ok_or_else(|| {
                TemplateError::at(FIELD, "an expression opened with {{ is not closed with }}")
            })?;
        let inner = percent_decode_str(&after_open[..end]).decode_utf8_lossy();
        let value = render_one(&format!("{{{{{inner}}}}}"))?;
        out.extend(utf8_percent_encode(&value, VALUE));
        rest = &after_open[end + close_len..];
    }
    out.push_str(rest);
    if percent_decode_str(&out).decode_utf8_lossy().contains("{%") {
        return Err(TemplateError::at(
            FIELD,
            "a statement ({% … %}): only expressions ({{ … }}) may be used",
        ));
    }
    let rendered = Url::parse(&out)
        .map_err(|e| TemplateError::at(FIELD, format!("renders to {out:?}, not a URL: {e}")))?;
    if rendered.scheme() != url.scheme()
        || rendered.host() != url.host()
        || rendered.port_or_known_default() != url.port_or_known_default()
    {
        return Err(TemplateError::at(FIELD, "renders to another host"));
    }
    if rendered.as_str().len() > crate::domain::target::MAX_URL_LEN {
        return Err(TemplateError::at(
            FIELD,
            format!(
                "renders to {} characters; at most {}",
                rendered.as_str().len(),
                crate::domain::target::MAX_URL_LEN
            ),
        ));
    }
    Ok(rendered)
}

/// The first of `needles` in `text`: where, and its length.
fn find_any(text: &str, needles: &[&str]) -> Option<(usize, usize)> {
    needles
        .iter()
        .filter_map(|n| text.find(n).map(|at| (at, n.len())))
        .min_by_key(|(at, _)| *at)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rendered(url: &str, value: &str) -> Result<String, String> {
        let url = Url::parse(url).unwrap();
        render(&url, |source| {
            assert!(
                source.starts_with("{{") && source.ends_with("}}"),
                "{source}"
            );
            Ok(value.to_string())
        })
        .map(|u| u.to_string())
        .map_err(|e| e.message)
    }

    #[test]
    fn values_are_encoded_in_path_and_query() {
        assert_eq!(
            rendered(
                "https://x.test/a/{{ run.id }}/b?d={{ run.id }}&k=1",
                "a/b c&d"
            )
            .unwrap(),
            "https://x.test/a/a%2Fb%20c%26d/b?d=a%2Fb%20c%26d&k=1"
        );
        assert_eq!(
            rendered("https://x.test/plain?q=%7Bx%7D", "v").unwrap(),
            "https://x.test/plain?q=%7Bx%7D"
        );
    }

    #[test]
    fn the_host_is_never_rendered_and_expressions_close() {
        assert!(
            rendered("https://x.test/a/{{ run.id", "v")
                .unwrap_err()
                .contains("not closed")
        );
        let mut url = Url::parse("https://x.test/").unwrap();
        url.set_path("{{ run.id }}");
        assert!(render(&url, |_| Ok("v".into())).is_ok());
    }
}
