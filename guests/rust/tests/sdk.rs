// The SDK called natively through sluice::testing, as a guest's own tests
// call their handler.

use sluice::http::{Request, Response};
use sluice::log::Level;
use sluice::testing::{call, call_http, call_with_meta};
use sluice::Error;

fn greet(input: &[u8]) -> Result<Vec<u8>, Error> {
    if input.is_empty() {
        return Err(Error::with_code("empty_input", "empty input"));
    }
    sluice::log::info(format_args!("greeting {} bytes", input.len()));
    let mut out = b"hello, ".to_vec();
    out.extend_from_slice(input);
    Ok(out)
}

#[test]
fn bytes_in_and_out_exactly() {
    let input = [0xff, 0x00, b'a', 0xfe];
    let c = call(greet, &input);
    let mut want = b"hello, ".to_vec();
    want.extend_from_slice(&input);
    assert_eq!(c.result, Ok(want));
    assert_eq!(c.logs, vec![(Level::Info, "greeting 4 bytes".to_string())]);
    assert_eq!(c.status, None);
}

#[test]
fn an_error_has_its_message_and_code() {
    let c = call(greet, b"");
    let err = c.result.unwrap_err();
    assert_eq!(err.message(), "empty input");
    assert_eq!(err.code(), Some("empty_input"));
    assert!(c.logs.is_empty());
}

#[test]
fn question_mark_turns_std_errors_into_errors() {
    fn parse(input: &[u8]) -> Result<String, Error> {
        let n: i64 = std::str::from_utf8(input)?.trim().parse()?;
        Ok((n * 2).to_string())
    }
    assert_eq!(call(parse, b"21").result, Ok(b"42".to_vec()));
    let err = call(parse, b"x").result.unwrap_err();
    assert_eq!(err.message(), "invalid digit found in string");
    assert_eq!(err.code(), None);
    let err = call(parse, &[0xff]).result.unwrap_err();
    assert!(err.message().contains("invalid utf-8"), "{err:?}");
}

#[test]
fn a_panic_fails_the_call_with_its_message() {
    fn boom(input: &[u8]) -> Result<&'static str, Error> {
        if input == b"index" {
            let v: Vec<u8> = Vec::new();
            return Ok(if v[input.len()] == 0 { "" } else { "x" });
        }
        panic!("boom on {} bytes", input.len())
    }
    let err = call(boom, b"abc").result.unwrap_err();
    assert_eq!(err.message(), "panic: boom on 3 bytes");
    let err = call(boom, b"index").result.unwrap_err();
    assert!(err.message().starts_with("panic: index out of bounds"), "{err:?}");
    // the next call runs normally
    assert_eq!(call(greet, b"x").result, Ok(b"hello, x".to_vec()));
}

#[test]
fn metadata_reaches_the_handler() {
    fn who(_: &[u8]) -> Result<String, Error> {
        Ok(format!(
            "{:?} {:?} {}",
            sluice::meta("trigger"),
            sluice::meta("nothing"),
            sluice::redelivered()
        ))
    }
    let c = call_with_meta(who, b"", &[("trigger", "nightly"), ("redelivered", "true")]);
    assert_eq!(c.result, Ok(br#"Some("nightly") None true"#.to_vec()));
    assert_eq!(call(who, b"").result, Ok(b"None None false".to_vec()));
}

fn echo_request(req: &Request) -> Result<Response, Error> {
    if req.body.is_empty() {
        return Ok(Response::text(400, "empty input"));
    }
    let body = format!(
        "{} {} q={:?} name={:?} id={:?} type={:?} multi={:?} body={}",
        req.method,
        req.path,
        req.query,
        req.query_param("name"),
        req.param("id"),
        req.header("content-type"),
        req.header_values("X-Multi").collect::<Vec<_>>(),
        req.text()?
    );
    Ok(Response::new(201)
        .header("Location", "/items/7")
        .header("Set-Cookie", "a=1")
        .header("Set-Cookie", "b=2")
        .body(body))
}

#[test]
fn an_http_handler_gets_the_request_and_sets_the_response() {
    let req = Request::new("PUT", "/items/7?name=a+b%21&x=1", b"data")
        .with_header("Content-Type", "text/plain")
        .with_header("X-Multi", "1")
        .with_header("X-Multi", "2");
    let c = call_http(echo_request, &req, &[("id", "7")]);
    let resp = c.response();
    assert_eq!(resp.status, 201);
    assert_eq!(
        resp.headers,
        vec![
            ("Location".to_string(), "/items/7".to_string()),
            ("Set-Cookie".to_string(), "a=1".to_string()),
            ("Set-Cookie".to_string(), "b=2".to_string()),
        ]
    );
    assert_eq!(
        String::from_utf8(resp.body).unwrap(),
        r#"PUT /items/7 q="name=a+b%21&x=1" name=Some("a b!") id=Some("7") type=Some("text/plain") multi=["1", "2"] body=data"#
    );
}

#[test]
fn an_http_handler_answers_its_own_errors_and_fails_on_bad_bodies() {
    let c = call_http(echo_request, &Request::new("POST", "/", b""), &[]);
    let resp = c.response();
    assert_eq!(resp.status, 400);
    assert_eq!(resp.body, b"empty input");
    assert_eq!(
        resp.headers,
        vec![("Content-Type".to_string(), "text/plain; charset=utf-8".to_string())]
    );
    let err = call_http(echo_request, &Request::new("POST", "/", &[0xff]), &[]).result.unwrap_err();
    assert!(err.message().starts_with("the request's body is not UTF-8"), "{err:?}");
}

#[test]
fn without_an_http_trigger_the_request_is_a_post_to_root() {
    fn show(req: &Request) -> Result<Response, Error> {
        Ok(Response::text(200, format!("{} {} {}", req.method, req.path, req.headers.len())))
    }
    let c = call(|input: &[u8]| -> Result<Vec<u8>, Error> { Ok(input.to_vec()) }, b"x");
    assert_eq!(c.result, Ok(b"x".to_vec()));
    // call_http with an empty request gives what a plain call sees
    let c = call_http(show, &Request::new("POST", "/", b""), &[]);
    assert_eq!(c.response().body, b"POST / 0");
    assert_eq!(c.status, None, "a 200 is the default: not set");
}
