package memstore_test

import (
	"testing"

	"github.com/incus-appliance/registry/internal/store"
	"github.com/incus-appliance/registry/internal/store/memstore"
	"github.com/incus-appliance/registry/internal/store/storetest"
)

func TestConformance(t *testing.T) {
	storetest.Run(t, func(*testing.T) store.Store { return memstore.New() },
		storetest.Capabilities{Attributes: true})
}
