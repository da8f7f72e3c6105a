//! [`ResponseBody`]: the body handed to callers.

use std::fmt;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::HeaderMap;
use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;

pin_project! {
    /// The body of a response returned through [`CancelOnDrop`](crate::CancelOnDrop).
    ///
    /// Either the inner service's body passed through untouched (every response
    /// the layer did not inspect), or bytes the layer read while inspecting the
    /// response — possibly followed by the rest of the inner body when the body
    /// was larger than [`max_inspect_bytes`](crate::CancelOnDropLayer::max_inspect_bytes).
    /// Frames, trailers and errors are the inner body's.
    pub struct ResponseBody<B> {
        #[pin]
        kind: Kind<B>,
    }
}

pin_project! {
    // `Read` is boxed so that a passed-through response is no larger than
    // the inner one.
    #[project = KindProj]
    enum Kind<B> {
        Inner { #[pin] body: B },
        Read { read: Box<Read<B>> },
    }
}

/// Bytes the layer read, then the rest of the inner body (boxed and pinned:
/// the bounded reader moves a body it has started to poll), then trailers.
struct Read<B> {
    data: Option<Bytes>,
    trailers: Option<HeaderMap>,
    rest: Option<Pin<Box<B>>>,
}

impl<B> ResponseBody<B> {
    /// The inner body, untouched.
    pub(crate) fn inner(body: B) -> Self {
        ResponseBody {
            kind: Kind::Inner { body },
        }
    }

    /// A body the layer read completely.
    pub(crate) fn full(data: Bytes, trailers: Option<HeaderMap>) -> Self {
        ResponseBody {
            kind: Kind::Read {
                read: Box::new(Read {
                    data: Some(data).filter(|d| !d.is_empty()),
                    trailers,
                    rest: None,
                }),
            },
        }
    }

    /// The bytes already read, followed by the rest of the inner body.
    pub(crate) fn prefixed(prefix: Bytes, rest: Pin<Box<B>>) -> Self {
        ResponseBody {
            kind: Kind::Read {
                read: Box::new(Read {
                    data: Some(prefix).filter(|d| !d.is_empty()),
                    trailers: None,
                    rest: Some(rest),
                }),
            },
        }
    }
}

impl<B: fmt::Debug> fmt::Debug for ResponseBody<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            Kind::Inner { body } => f.debug_tuple("ResponseBody::Inner").field(body).finish(),
            Kind::Read { read } => f
                .debug_struct("ResponseBody::Read")
                .field("buffered", &read.data.as_ref().map_or(0, Bytes::len))
                .field("rest", &read.rest)
                .finish(),
        }
    }
}

impl<B> Body for ResponseBody<B>
where
    B: Body<Data = Bytes>,
{
    type Data = Bytes;
    type Error = B::Error;

    #[inline]
    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        match self.project().kind.project() {
            KindProj::Inner { body } => body.poll_frame(cx),
            KindProj::Read { read } => {
                if let Some(data) = read.data.take() {
                    return Poll::Ready(Some(Ok(Frame::data(data))));
                }
                if let Some(rest) = read.rest.as_mut() {
                    return rest.as_mut().poll_frame(cx);
                }
                Poll::Ready(read.trailers.take().map(|t| Ok(Frame::trailers(t))))
            }
        }
    }

    #[inline]
    fn is_end_stream(&self) -> bool {
        match &self.kind {
            Kind::Inner { body } => body.is_end_stream(),
            Kind::Read { read } => {
                read.data.is_none()
                    && read.trailers.is_none()
                    && read.rest.as_ref().map_or(true, |rest| rest.is_end_stream())
            }
        }
    }

    #[inline]
    fn size_hint(&self) -> SizeHint {
        match &self.kind {
            Kind::Inner { body } => body.size_hint(),
            Kind::Read { read } => {
                let buffered = read.data.as_ref().map_or(0, |d| d.len() as u64);
                match &read.rest {
                    None => SizeHint::with_exact(buffered),
                    Some(rest) => {
                        let inner = rest.size_hint();
                        let mut hint = SizeHint::new();
                        hint.set_lower(inner.lower().saturating_add(buffered));
                        if let Some(upper) = inner.upper() {
                            hint.set_upper(upper.saturating_add(buffered));
                        }
                        hint
                    }
                }
            }
        }
    }
}
