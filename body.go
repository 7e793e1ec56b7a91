package cronofy

import (
	"errors"
	"io"
	"math"
	"net/http"
	"sync"
)

// chunkSize is the first allocation for a body of unknown length.
const chunkSize = 16 << 10

var (
	errBodyTooLarge = errors.New("request body exceeds max_body_size")
	errBodyReleased = errors.New("callback body already released")
	errBodyClosed   = errors.New("read on a closed callback body")
)

// bufferPool recycles body buffers across requests. It stores pointers so
// that putting a slice back does not allocate.
var bufferPool = sync.Pool{New: func() any { return new([]byte) }}

// callbackBody holds the bytes of one request body. The buffer goes back
// to bufferPool only when the handler and every reader handed to the next
// handler are done with it, so a transport that is still sending the body
// upstream never reads bytes replaced by another request's.
type callbackBody struct {
	mu   sync.Mutex
	data []byte
	slot *[]byte // the pool entry data came from
	refs int
}

func newCallbackBody() *callbackBody {
	slot := bufferPool.Get().(*[]byte)
	return &callbackBody{data: (*slot)[:0], slot: slot, refs: 1}
}

// release drops one reference and recycles the buffer with the last one.
func (b *callbackBody) release() {
	b.mu.Lock()
	defer b.mu.Unlock()

	b.refs--
	if b.refs == 0 {
		*b.slot = b.data[:0]
		bufferPool.Put(b.slot)
		b.data, b.slot = nil, nil
	}
}

// newReader returns a reader over the body that keeps the buffer alive
// until it is closed. It fails once the buffer has been recycled, which
// can only happen when GetBody is called after the request is finished.
func (b *callbackBody) newReader() (io.ReadCloser, error) {
	b.mu.Lock()
	defer b.mu.Unlock()

	if b.refs == 0 {
		return nil, errBodyReleased
	}
	b.refs++
	return &bodyReader{body: b, data: b.data}, nil
}

// readBody reads the whole request body, at most limit bytes, into a
// pooled buffer. A declared Content-Length over limit is rejected before
// anything is read. It returns errBodyTooLarge (also when an earlier
// handler's size limit stopped the read) or the read error, such as
// io.ErrUnexpectedEOF for a body shorter than its Content-Length.
func readBody(r *http.Request, limit int64) (*callbackBody, error) {
	// The body is held in one []byte and the read loop looks one byte past
	// the limit, so on 32-bit platforms the limit must stay below MaxInt.
	limit = min(limit, math.MaxInt-1)
	if r.ContentLength > limit {
		return nil, errBodyTooLarge
	}

	b := newCallbackBody()
	if r.Body == nil || r.Body == http.NoBody {
		return b, nil
	}

	var err error
	if r.ContentLength >= 0 {
		err = b.readKnownLength(r.Body, int(r.ContentLength))
	} else {
		err = b.readUnknownLength(r.Body, int(limit))
	}
	if err != nil {
		b.release()
		var maxBytesErr *http.MaxBytesError
		if errors.As(err, &maxBytesErr) {
			return nil, errBodyTooLarge
		}
		return nil, err
	}
	return b, nil
}

func (b *callbackBody) readKnownLength(body io.Reader, length int) error {
	if cap(b.data) < length {
		b.data = make([]byte, length)
	}
	b.data = b.data[:length]
	_, err := io.ReadFull(body, b.data)
	return err
}

// readUnknownLength reads a body without a declared length, such as a
// chunked HTTP/1.1 body or an HTTP/2 body without content-length, and
// stops with errBodyTooLarge as soon as it passes limit bytes.
func (b *callbackBody) readUnknownLength(body io.Reader, limit int) error {
	for {
		if len(b.data) == cap(b.data) {
			// One byte past the limit is enough to know the body is too large.
			grown := min(max(2*cap(b.data), chunkSize), limit+1)
			next := make([]byte, len(b.data), grown)
			copy(next, b.data)
			b.data = next
		}

		n, err := body.Read(b.data[len(b.data):cap(b.data)])
		b.data = b.data[:len(b.data)+n]
		if len(b.data) > limit {
			return errBodyTooLarge
		}
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
	}
}

// bodyReader reads the verified bytes for the next handler. Read and Close
// may be called from different goroutines (Go's transport may close a
// request body asynchronously), so both take the lock.
type bodyReader struct {
	mu     sync.Mutex
	body   *callbackBody
	data   []byte
	offset int
}

func (r *bodyReader) Read(p []byte) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()

	if r.body == nil {
		return 0, errBodyClosed
	}
	if r.offset >= len(r.data) {
		return 0, io.EOF
	}
	n := copy(p, r.data[r.offset:])
	r.offset += n
	return n, nil
}

func (r *bodyReader) Close() error {
	r.mu.Lock()
	defer r.mu.Unlock()

	if r.body != nil {
		r.body.release()
		r.body, r.data = nil, nil
	}
	return nil
}

// Interface guards
var _ io.ReadCloser = (*bodyReader)(nil)
