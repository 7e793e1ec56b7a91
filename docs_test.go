package cronofy

import (
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

// TestOperationsDocCoversOutcomes checks that the operator documentation
// has a troubleshooting section for every rejection code and names every
// metric, so that a new code or metric cannot ship undocumented.
func TestOperationsDocCoversOutcomes(t *testing.T) {
	data, err := os.ReadFile("docs/operations.md")
	if err != nil {
		t.Fatal(err)
	}
	doc := string(data)

	for _, code := range rejectionReasons {
		if !strings.Contains(doc, "\n### "+code+"\n") {
			t.Errorf("docs/operations.md has no section \"### %s\"", code)
		}
	}

	for _, name := range metricNames(t) {
		if !strings.Contains(doc, "`"+name+"`") {
			t.Errorf("docs/operations.md does not name the metric %s", name)
		}
	}
}

// metricNames returns the full names of the handler's metrics, read from
// their descriptors.
func metricNames(t *testing.T) []string {
	t.Helper()

	shared := processMetrics()
	descs := make(chan *prometheus.Desc, 16)
	for _, collector := range []prometheus.Collector{shared.requests, shared.secretMatches, shared.bodySize, shared.duration} {
		collector.Describe(descs)
	}
	close(descs)

	// A descriptor has no name accessor, only its String form.
	fqName := regexp.MustCompile(`fqName: "([^"]+)"`)
	var names []string
	for desc := range descs {
		match := fqName.FindStringSubmatch(desc.String())
		if match == nil {
			t.Fatalf("no fqName in descriptor %s", desc)
		}
		names = append(names, match[1])
	}
	if len(names) != 4 {
		t.Fatalf("got metric names %q, want 4", names)
	}
	return names
}

func TestReadmeLinksOperationsDoc(t *testing.T) {
	data, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(data), "](docs/operations.md)") {
		t.Error("README.md does not link docs/operations.md")
	}
}
