//! Django's message loop in minijinja, askama and tera: the tag map applied, plain text
//! escaped, trusted HTML kept, with nothing asked of the template.

use flash_core::{HtmlMessage, Level, LevelTags, Message, MessageView};

/// Django's loop, as a Django template author writes it.
const DJANGO_LOOP: &str =
    r#"{% for message in messages %}<li class="{{ message.tags }}">{{ message }}</li>{% endfor %}"#;

/// The two kinds of text, under an application tag map.
fn views() -> Vec<MessageView> {
    let tags = LevelTags::default().set(Level::ERROR, "danger");
    [
        Message::new(Level::ERROR, "<script>alert('x')</script> & co").with_extra_tags("form"),
        Message::new(Level::SUCCESS, r#"Saved. <a href="/undo">Undo</a>"#)
            .trusted_html()
            .with_data(serde_json::json!({"id": 7})),
    ]
    .iter()
    .map(|m| m.view(&tags))
    .collect()
}

fn assert_page(page: &str, engine: &str) {
    assert!(
        page.starts_with(r#"<li class="form danger">&lt;script&gt;alert("#),
        "{engine}: plain text must be escaped and the app's tag used: {page}"
    );
    assert!(!page.contains("<script>"), "{engine}: {page}");
    assert!(
        page.ends_with(r#"<li class="success">Saved. <a href="/undo">Undo</a></li>"#),
        "{engine}: trusted HTML must stay as is: {page}"
    );
}

#[test]
fn minijinja_runs_djangos_loop_unchanged() {
    let mut env = minijinja::Environment::new();
    env.set_formatter(flash_core::minijinja_formatter);
    env.add_template("page.html", DJANGO_LOOP)
        .expect("template");
    let page = env
        .get_template("page.html")
        .expect("template")
        .render(minijinja::context! { messages => views() })
        .expect("render");
    assert_page(&page, "minijinja");
}

#[test]
fn minijinja_fields_and_data_read_through_serde() {
    let mut env = minijinja::Environment::new();
    env.add_template(
        "t.html",
        "{% for m in messages %}{{ m.level }} {{ m.level_tag }} [{{ m.extra_tags }}] {{ m.safe }} {{ m.message }} {{ m.data.id }};{% endfor %}",
    )
    .expect("template");
    let out = env
        .get_template("t.html")
        .expect("template")
        .render(minijinja::context! { messages => views() })
        .expect("render");
    assert!(
        out.starts_with("40 danger [form] False &lt;script&gt;"),
        "{out}"
    );
    assert!(
        out.ends_with(r#"25 success [] True Saved. <a href="/undo">Undo</a> 7;"#),
        "{out}"
    );
}

#[test]
fn minijinja_without_the_formatter_escapes_rather_than_trusts() {
    let mut env = minijinja::Environment::new();
    env.add_template("page.html", DJANGO_LOOP)
        .expect("template");
    let page = env
        .get_template("page.html")
        .expect("template")
        .render(minijinja::context! { messages => views() })
        .expect("render");
    assert!(
        !page.contains("<script>") && !page.contains("<a href"),
        "{page}"
    );
}

#[derive(askama::Template)]
#[template(
    source = r#"{% for message in messages %}<li class="{{ message.tags }}">{{ message }}</li>{% endfor %}"#,
    ext = "html"
)]
struct AskamaPage {
    messages: Vec<HtmlMessage>,
}

#[test]
fn askama_runs_djangos_loop_unchanged() {
    use askama::Template as _;
    let page = AskamaPage {
        messages: views().into_iter().map(HtmlMessage::from).collect(),
    }
    .render()
    .expect("render");
    assert_page(&page, "askama");
}

#[test]
fn tera_runs_djangos_loop_with_message_message() {
    let mut tera = tera::Tera::default();
    tera.add_raw_template(
        "page.html",
        &DJANGO_LOOP.replace("{{ message }}", "{{ message.message }}"),
    )
    .expect("template");
    let mut context = tera::Context::new();
    context.insert_value("messages", tera::Value::from(views()));
    let page = tera.render("page.html", &context).expect("render");
    assert_page(&page, "tera");
}

#[test]
fn json_has_the_template_fields() {
    let json = serde_json::to_value(views()).expect("json");
    assert_eq!(
        json,
        serde_json::json!([
            {"level": 40, "level_tag": "danger", "tags": "form danger", "extra_tags": "form",
             "message": "<script>alert('x')</script> & co", "safe": false},
            {"level": 25, "level_tag": "success", "tags": "success", "extra_tags": "",
             "message": "Saved. <a href=\"/undo\">Undo</a>", "safe": true, "data": {"id": 7}},
        ])
    );
}
