//! [`Collect`]: reads a body into memory up to a limit without losing
//! anything past it. The body is boxed and pinned, so it needs no `Unpin`.

use std::fmt;
use std::mem;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use bytes::{Bytes, BytesMut};
use http::HeaderMap;
use http_body::Body;

/// What [`Collect`] ends with.
pub(crate) enum Collected<B> {
    /// The whole body, no larger than the limit.
    Complete {
        data: Bytes,
        trailers: Option<HeaderMap>,
    },
    /// The body passed the limit: the bytes read so far and the unread rest.
    Overflow { prefix: Bytes, rest: Pin<Box<B>> },
}

/// Reads a body into memory up to a limit, without losing anything past it.
///
/// A body that arrives as one frame (the common case for small JSON) is kept as
/// that frame's `Bytes`, without a copy.
pub(crate) struct Collect<B> {
    body: Option<Pin<Box<B>>>,
    first: Option<Bytes>,
    buf: BytesMut,
    limit: usize,
    trailers: Option<HeaderMap>,
}

impl<B> fmt::Debug for Collect<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Collect")
            .field(
                "read",
                &(self.first.as_ref().map_or(0, Bytes::len) + self.buf.len()),
            )
            .field("limit", &self.limit)
            .finish()
    }
}

impl<B> Collect<B> {
    /// Moves the reader out, leaving an empty, finished one.
    pub(crate) fn take(&mut self) -> Self {
        mem::replace(
            self,
            Collect {
                body: None,
                first: None,
                buf: BytesMut::new(),
                limit: 0,
                trailers: None,
            },
        )
    }
}

impl<B> Collect<B>
where
    B: Body<Data = Bytes>,
{
    pub(crate) fn new(body: B, limit: usize) -> Self {
        Collect {
            body: Some(Box::pin(body)),
            first: None,
            buf: BytesMut::new(),
            limit,
            trailers: None,
        }
    }

    fn len(&self) -> usize {
        self.first.as_ref().map_or(0, Bytes::len) + self.buf.len()
    }

    fn take_data(&mut self) -> Bytes {
        match self.first.take() {
            Some(first) => first,
            None => std::mem::take(&mut self.buf).freeze(),
        }
    }

    fn push(&mut self, chunk: Bytes) {
        if chunk.is_empty() {
            return;
        }
        if self.first.is_none() && self.buf.is_empty() {
            self.first = Some(chunk);
            return;
        }
        if let Some(first) = self.first.take() {
            self.buf.reserve(first.len() + chunk.len());
            self.buf.extend_from_slice(&first);
        }
        self.buf.extend_from_slice(&chunk);
    }

    /// Drives the body until it ends or passes the limit. Polling again after
    /// it returned `Ready` yields an empty, complete body.
    pub(crate) fn poll_collect(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Result<Collected<B>, B::Error>> {
        loop {
            if self.body.is_none() {
                return Poll::Ready(Ok(Collected::Complete {
                    data: self.take_data(),
                    trailers: self.trailers.take(),
                }));
            }
            if self.len() > self.limit {
                let rest = self.body.take();
                let prefix = self.take_data();
                return Poll::Ready(Ok(match rest {
                    Some(rest) => Collected::Overflow { prefix, rest },
                    None => Collected::Complete {
                        data: prefix,
                        trailers: None,
                    },
                }));
            }
            let Some(body) = self.body.as_mut() else {
                continue;
            };
            match ready!(body.as_mut().poll_frame(cx)) {
                None => {
                    self.body = None;
                }
                Some(Err(e)) => {
                    self.body = None;
                    return Poll::Ready(Err(e));
                }
                Some(Ok(frame)) => match frame.into_data() {
                    Ok(data) => self.push(data),
                    Err(frame) => {
                        if let Ok(trailers) = frame.into_trailers() {
                            match self.trailers.as_mut() {
                                Some(t) => t.extend(trailers),
                                None => self.trailers = Some(trailers),
                            }
                        }
                    }
                },
            }
        }
    }
}

/// Reads a body to its end, or to `limit`: the data and trailers, `None`
/// past the limit or on an error.
pub(crate) async fn read_to_end<B>(body: B, limit: usize) -> Option<(Bytes, Option<HeaderMap>)>
where
    B: Body<Data = Bytes>,
{
    let mut collect = Collect::new(body, limit);
    match std::future::poll_fn(|cx| collect.poll_collect(cx))
        .await
        .ok()?
    {
        Collected::Complete { data, trailers } => Some((data, trailers)),
        Collected::Overflow { .. } => None,
    }
}
