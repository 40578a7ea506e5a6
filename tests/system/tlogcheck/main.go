// tlogcheck: an outside verifier of a renkei records log, written with the
// Go checksum database's own packages (golang.org/x/mod/sumdb/note and
// sumdb/tlog), which know nothing of renkei. It fetches the node's C2SP
// checkpoint, verifies it with the log's vkey, reads tiles through
// tlog.TileHashReader (which checks every tile against the checkpoint),
// proves inclusion of records and consistency with an older checkpoint,
// and compares each proof with the one the node's own endpoint gives.
//
// Usage: tlogcheck -url URL -vkey VKEY -cert C -key K -ca CA [-n N] [-old FILE] [-save FILE]
// Prints one JSON line of what it checked; exits 1 on any disagreement.
package main

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"math/rand"
	"net/http"
	"os"
	"strconv"
	"strings"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

var client *http.Client
var base string

func fail(format string, args ...interface{}) {
	fmt.Fprintf(os.Stderr, "tlogcheck: "+format+"\n", args...)
	os.Exit(1)
}

func get(path string) []byte {
	resp, err := client.Get(base + path)
	if err != nil {
		fail("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		fail("GET %s: status %d: %s", path, resp.StatusCode, body)
	}
	return body
}

// C2SP tlog-tiles paths are Go's without the tile height: tile/8/L/N → tile/L/N.
type tileReader struct{ reads int }

func (r *tileReader) Height() int { return 8 }

func (r *tileReader) ReadTiles(tiles []tlog.Tile) ([][]byte, error) {
	out := make([][]byte, len(tiles))
	for i, t := range tiles {
		p := strings.TrimPrefix(t.Path(), "tile/8/")
		out[i] = get("/v1/tile/" + p)
		r.reads++
	}
	return out, nil
}

func (r *tileReader) SaveTiles(tiles []tlog.Tile, data [][]byte) {}

// parse a verified checkpoint body: origin, size, root.
func parseCheckpoint(text, origin string) tlog.Tree {
	lines := strings.Split(text, "\n")
	if len(lines) < 4 || lines[0] != origin {
		fail("checkpoint body is not <origin>\\n<size>\\n<root>\\n: %q", text)
	}
	n, err := strconv.ParseInt(lines[1], 10, 64)
	h, err2 := base64.StdEncoding.DecodeString(lines[2])
	if err != nil || err2 != nil || len(h) != 32 {
		fail("checkpoint size or root malformed: %q", text)
	}
	var tree tlog.Tree
	tree.N = n
	copy(tree.Hash[:], h)
	return tree
}

func openNote(msg []byte, verifier note.Verifier) tlog.Tree {
	n, err := note.Open(msg, note.VerifierList(verifier))
	if err != nil {
		fail("checkpoint does not verify with the vkey: %v", err)
	}
	return parseCheckpoint(n.Text, verifier.Name())
}

func hexes(hs []tlog.Hash) []string {
	out := make([]string, len(hs))
	for i, h := range hs {
		out[i] = hex.EncodeToString(h[:])
	}
	return out
}

func same(a []string, b []interface{}) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if s, ok := b[i].(string); !ok || s != a[i] {
			return false
		}
	}
	return true
}

func main() {
	url := flag.String("url", "", "the node's base URL")
	vkey := flag.String("vkey", "", "the log's vkey (network.json log_vkey)")
	certf := flag.String("cert", "", "client certificate")
	keyf := flag.String("key", "", "client key")
	caf := flag.String("ca", "", "network CA")
	n := flag.Int("n", 20, "random inclusion proofs")
	old := flag.String("old", "", "an older checkpoint (file) to prove consistency with")
	save := flag.String("save", "", "write the checkpoint fetched to this file")
	proofs := flag.Bool("compare", true, "compare with the node's proof endpoints (needs a caller they allow)")
	flag.Parse()

	cert, err := tls.LoadX509KeyPair(*certf, *keyf)
	if err != nil {
		fail("client credential: %v", err)
	}
	caPEM, err := os.ReadFile(*caf)
	if err != nil {
		fail("CA: %v", err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(caPEM)
	client = &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{
		Certificates: []tls.Certificate{cert}, RootCAs: pool, MinVersion: tls.VersionTLS13}}}
	base = strings.TrimSuffix(*url, "/")

	verifier, err := note.NewVerifier(*vkey)
	if err != nil {
		fail("vkey: %v", err)
	}
	msg := get("/v1/checkpoint")
	tree := openNote(msg, verifier)
	if *save != "" {
		os.WriteFile(*save, msg, 0644)
	}
	tr := &tileReader{}
	hr := tlog.TileHashReader(tree, tr)
	checked := 0
	for i := 0; i < *n && tree.N > 0; i++ {
		idx := rand.Int63n(tree.N)
		leaves, err := hr.ReadHashes([]int64{tlog.StoredHashIndex(0, idx)})
		if err != nil {
			fail("leaf %d: %v", idx, err)
		}
		proof, err := tlog.ProveRecord(tree.N, idx, hr)
		if err != nil {
			fail("prove leaf %d: %v", idx, err)
		}
		if err := tlog.CheckRecord(proof, tree.N, tree.Hash, idx, leaves[0]); err != nil {
			fail("leaf %d: %v", idx, err)
		}
		if *proofs {
			var mine map[string]interface{}
			json.Unmarshal(get(fmt.Sprintf("/v1/records/proof?index=%d&tree_size=%d", idx, tree.N)), &mine)
			path, _ := mine["audit_path"].([]interface{})
			if !same(hexes(proof), path) || mine["leaf_hash"] != hex.EncodeToString(leaves[0][:]) ||
				logSigned(fmt.Sprint(mine["checkpoint"])) != logSigned(string(msg)) {
				fail("leaf %d: the node's proof differs from the one computed from its tiles: %v", idx, mine)
			}
		}
		checked++
	}
	consistency := 0
	if *old != "" {
		oldMsg, err := os.ReadFile(*old)
		if err != nil {
			fail("old checkpoint: %v", err)
		}
		oldTree := openNote(oldMsg, verifier)
		proof, err := tlog.ProveTree(tree.N, oldTree.N, hr)
		if err != nil {
			fail("prove consistency %d..%d: %v", oldTree.N, tree.N, err)
		}
		if err := tlog.CheckTree(proof, tree.N, tree.Hash, oldTree.N, oldTree.Hash); err != nil {
			fail("consistency %d..%d: %v", oldTree.N, tree.N, err)
		}
		if *proofs && oldTree.N > 0 && oldTree.N < tree.N {
			var mine map[string]interface{}
			json.Unmarshal(get(fmt.Sprintf("/v1/records/consistency?from=%d&to=%d", oldTree.N, tree.N)), &mine)
			p, _ := mine["proof"].([]interface{})
			if !same(hexes(proof), p) {
				fail("consistency %d..%d: the node's proof differs: %v", oldTree.N, tree.N, mine)
			}
		}
		consistency = 1
	}
	out, _ := json.Marshal(map[string]interface{}{"tree_size": tree.N, "inclusion_checked": checked,
		"consistency_checked": consistency, "tiles_read": tr.reads})
	fmt.Println(string(out))
}

// The checkpoint up to and with the log's own signature line: the witnesses'
// cosignature lines after it arrive in their own time.
func logSigned(note string) string {
	at := strings.Index(note, "\n\n")
	if at < 0 {
		return note
	}
	end := strings.Index(note[at+2:], "\n")
	if end < 0 {
		return note
	}
	return note[:at+2+end+1]
}
