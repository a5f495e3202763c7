package catalog

import "fmt"

// A product records who wrote it (Product.Writer, "registry_writer",
// which clients ignore): publish, or a mirror of one source. A mirror
// adds versions only to the products it wrote itself, unless told to
// (Merger.IntoExisting): a source reusing a product key of the registry
// cannot slip a newer version, and with it the product's aliases, into a
// product another writer published.
//
// A product recording no writer was written before products recorded
// theirs, or rewritten by a tool that drops fields it does not know: it is
// nobody's, so no mirror adds to it unless told to; one that is told to
// records itself as its writer (and publish records itself whenever it
// adds to a product).

// WriterPublish is the writer of the products publish writes.
const WriterPublish = "publish"

// MirrorWriter is the writer of the products a mirror of source writes.
func MirrorWriter(source string) string { return "mirror " + source }

// writerName names a product's writer in a message.
func writerName(w string) string {
	if w == "" {
		return "a writer it does not record"
	}
	return w
}

// Merger is who merges copies into a catalog (MergeAll): the writer
// recorded in the products it creates, and whether it may add versions to
// products another writer wrote.
type Merger struct {
	Writer       string
	IntoExisting bool
}

// ProductOwnedError refuses to add a copy to a product another writer
// wrote.
type ProductOwnedError struct {
	Product string
	// Owner is the product's writer ("" when it records none); Writer the
	// merger's.
	Owner, Writer string
}

func (e *ProductOwnedError) Error() string {
	return fmt.Sprintf("product %s was written by %s, not by this %s: its versions are not added (filter it out, or pass --into-existing to add them)", e.Product, writerName(e.Owner), e.Writer)
}

// checkWriter reports whether merger by may change product p (nil: a new
// product), and the name of the other writer it then adds to ("" for its
// own product).
func (by Merger) checkWriter(pk string, p *Product) (joined string, err error) {
	if p == nil || p.Writer == by.Writer {
		return "", nil
	}
	if !by.IntoExisting {
		return "", &ProductOwnedError{Product: pk, Owner: p.Writer, Writer: by.Writer}
	}
	return writerName(p.Writer), nil
}
