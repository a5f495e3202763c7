package image

import (
	"crypto/sha256"
	"encoding/hex"
	"hash"
)

// partHasher is a hash.Hash-shaped writer that records the SHA-256 of
// every consecutive size-byte chunk of what it is fed (the last may be
// shorter): the per-part checksums of a multipart upload, computed in the
// same single read of the file as its other digests.
type partHasher struct {
	size int64
	cur  hash.Hash
	n    int64 // bytes in cur
	sums []string
}

func newPartHasher(size int64) *partHasher {
	return &partHasher{size: size, cur: sha256.New()}
}

func (p *partHasher) Write(b []byte) (int, error) {
	total := len(b)
	for len(b) > 0 {
		k := min(int64(len(b)), p.size-p.n)
		p.cur.Write(b[:k])
		p.n += k
		b = b[k:]
		if p.n == p.size {
			p.flush()
		}
	}
	return total, nil
}

func (p *partHasher) flush() {
	p.sums = append(p.sums, hex.EncodeToString(p.cur.Sum(nil)))
	p.cur.Reset()
	p.n = 0
}

// parts returns the chunk digests, including a final short chunk.
func (p *partHasher) parts() []string {
	if p.n > 0 {
		p.flush()
	}
	return p.sums
}

// The rest of hash.Hash, so the pipeline can treat it like its digests.
func (p *partHasher) Sum(b []byte) []byte { return b }
func (p *partHasher) Reset()              { p.cur.Reset(); p.n = 0; p.sums = nil }
func (p *partHasher) Size() int           { return 0 }
func (p *partHasher) BlockSize() int      { return sha256.BlockSize }
