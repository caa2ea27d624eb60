//! Reading the demo page the way its contract describes it.

/// One `<li>` of the page's `<ul id="messages">`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Item {
    /// The `class` attribute, as written in the HTML (escaped).
    pub class: String,
    /// The element's content, as written in the HTML (escaped).
    pub html: String,
}

/// The messages shown on the demo page, in order; `None` when the page has no list.
///
/// # Panics
/// When the list is malformed (the contract is broken).
pub fn messages(page: &str) -> Option<Vec<Item>> {
    const OPEN: &str = "<ul id=\"messages\">";
    let start = page.find(OPEN)? + OPEN.len();
    assert_eq!(
        page.matches(OPEN).count(),
        1,
        "one message list at most:\n{page}"
    );
    let end = start
        + page[start..]
            .find("</ul>")
            .unwrap_or_else(|| panic!("unclosed message list:\n{page}"));
    let mut items = Vec::new();
    let mut rest = &page[start..end];
    while let Some(at) = rest.find("<li class=\"") {
        rest = &rest[at + "<li class=\"".len()..];
        let quote = rest.find("\">").expect("class attribute closed");
        let class = rest[..quote].to_owned();
        rest = &rest[quote + 2..];
        let close = rest.find("</li>").expect("item closed");
        items.push(Item {
            class,
            html: rest[..close].to_owned(),
        });
        rest = &rest[close + "</li>".len()..];
    }
    assert!(
        !items.is_empty(),
        "an empty list must not be rendered:\n{page}"
    );
    Some(items)
}

/// The items' contents, for comparing with expected texts.
pub fn texts(page: &str) -> Vec<String> {
    messages(page)
        .unwrap_or_default()
        .into_iter()
        .map(|i| i.html)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_list() {
        let page = "<p>x</p><ul id=\"messages\">\n<li class=\"a info\">one &lt;b&gt;</li>\n<li class=\"\">two</li>\n</ul><form>";
        assert_eq!(
            messages(page).unwrap(),
            [
                Item {
                    class: "a info".into(),
                    html: "one &lt;b&gt;".into()
                },
                Item {
                    class: String::new(),
                    html: "two".into()
                }
            ]
        );
        assert_eq!(messages("<form></form>"), None);
    }
}
