//! Looking inside a response: the bounded reader. Which requests and
//! responses are candidates, and what a complete body holds, are the
//! protocol's to say (`crate::protocol`).

mod collect;

use http::Response;

pub(crate) use collect::{read_to_end, Collect, Collected};

/// Splits a response into its head and a bounded reader of its body.
pub(crate) fn split<B>(response: Response<B>, limit: usize) -> (Response<()>, Collect<B>)
where
    B: http_body::Body<Data = bytes::Bytes>,
{
    let (parts, body) = response.into_parts();
    (Response::from_parts(parts, ()), Collect::new(body, limit))
}
