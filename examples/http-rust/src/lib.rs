//! http-rust: a Rust reactor that speaks HTTP (guests/rust, ABI 1.1).
//! Behind an HTTP trigger on /items/{id}:
//!
//!   empty body  400, text/plain, "empty input"
//!   any other   201, Location: /items/ID, Set-Cookie: a=1 and b=2,
//!               text/plain, the body telling the method, the path, the
//!               query's "name", the Authorization header and the body
//!
//!   cargo build --release --target wasm32-wasip1    (wasm32-wasi before Rust 1.78)
//!   sluice fn deploy items target/wasm32-wasip1/release/http_rust.wasm
//!   sluice trigger create items --fn items --http-path '/items/{id}'

use sluice::http::{Request, Response};

sluice::http_handler!(handle);

fn handle(req: &Request) -> Result<Response, sluice::Error> {
    if req.body.is_empty() {
        return Ok(Response::text(400, "empty input"));
    }
    let id = req.param("id").unwrap_or_default();
    sluice::log::info(format_args!("item {id}: {} bytes", req.body.len()));
    let body = format!(
        "{} {} name={} auth={} body={}",
        req.method,
        req.path,
        req.query_param("name").unwrap_or_default(),
        req.header("authorization").unwrap_or("-"),
        req.text()?
    );
    Ok(Response::text(201, body)
        .header("Location", format!("/items/{id}"))
        .header("Set-Cookie", "a=1")
        .header("Set-Cookie", "b=2"))
}

#[cfg(test)]
mod tests {
    use super::handle;
    use sluice::http::Request;
    use sluice::testing::call_http;

    #[test]
    fn creates_an_item() {
        let req = Request::new("PUT", "/items/7?name=a%20b", b"data").with_header("Authorization", "Bearer x");
        let resp = call_http(handle, &req, &[("id", "7")]).response();
        assert_eq!(resp.status, 201);
        assert_eq!(resp.body, b"PUT /items/7 name=a b auth=Bearer x body=data");
        assert!(resp.headers.contains(&("Location".to_string(), "/items/7".to_string())));
    }

    #[test]
    fn refuses_an_empty_body() {
        let resp = call_http(handle, &Request::new("POST", "/items/7", b""), &[]).response();
        assert_eq!((resp.status, resp.body), (400, b"empty input".to_vec()));
    }
}
