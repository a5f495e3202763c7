package main

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"time"
)

// depthCost publishes the builds, oldest first, into a fresh registry for
// each delta depth and prints what the depth costs: the deltas stored
// (bytes, and as a share of the newest root), and the publish time of
// each build after the first (the deltas are encoded and decode-checked
// there, each base root fetched from the registry).
func depthCost(pub, work, name string, builds []buildOut, depths []int) {
	fmt.Printf("\n%-6s %8s %14s %10s  %s\n", "depth", "deltas", "delta bytes", "of root", "publish time per version (first: no delta)")
	for _, k := range depths {
		reg := filepath.Join(work, fmt.Sprintf("registry-depth-%d", k))
		var deltas, bytes int64
		var times string
		for _, b := range builds {
			start := time.Now()
			var res struct {
				Deltas []struct {
					Size   int64 `json:"size"`
					Listed bool  `json:"listed"`
				} `json:"deltas"`
			}
			check(json.Unmarshal([]byte(run(pub, name, "--metadata", b.meta, "--rootfs", b.root, "--bucket", reg,
				"--delta-depth", fmt.Sprint(k), "--json", "--no-progress")), &res))
			times += fmt.Sprintf(" %5.1fs", time.Since(start).Seconds())
			for _, d := range res.Deltas {
				if d.Listed {
					deltas++
					bytes += d.Size
				}
			}
		}
		last := builds[len(builds)-1]
		fmt.Printf("%-6d %8d %14d %9.3f%% %s\n", k, deltas, bytes, 100*float64(bytes)/float64(last.size), times)
	}
}
