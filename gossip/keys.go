package gossip

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"slices"
	"strings"

	"github.com/hashicorp/memberlist"
)

// maxKeys bounds the keyring: a rotation needs two keys, and every key is
// tried on every packet that the first one does not decrypt.
const maxKeys = 8

// keyring returns the keys gossip uses, the one that encrypts first: SecretKey
// alone, or the keyring read from SecretKeyFile. None means unencrypted.
func (c *Config) keyring() ([][]byte, error) {
	if len(c.SecretKey) > 0 || c.SecretKeyFile == "" {
		switch len(c.SecretKey) {
		case 0:
			return nil, nil
		case 16, 24, 32:
			return [][]byte{c.SecretKey}, nil
		}
		return nil, fmt.Errorf("cluster secret key must be 16, 24 or 32 bytes (AES-128/192/256), got %d bytes", len(c.SecretKey))
	}
	return readKeyFile(c.SecretKeyFile)
}

// readKeyFile reads a keyring file: one key per line, raw or base64, the
// first one encrypting and all of them accepted. Blank lines and lines
// starting with # are ignored.
func readKeyFile(path string) ([][]byte, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("--cluster.secret-key-file: %w", err)
	}
	keys, err := parseKeyring(b)
	if err != nil {
		return nil, fmt.Errorf("--cluster.secret-key-file %s: %w", path, err)
	}
	return keys, nil
}

func parseKeyring(b []byte) ([][]byte, error) {
	var keys [][]byte
	var errs []error
	for i, line := range strings.Split(string(b), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		k, err := decodeKey(line)
		if err != nil {
			errs = append(errs, fmt.Errorf("line %d: %w", i+1, err))
			continue
		}
		if !slices.ContainsFunc(keys, func(o []byte) bool { return bytes.Equal(o, k) }) {
			keys = append(keys, k)
		}
	}
	if len(errs) > 0 {
		// A raw binary key written before keyrings (head -c 32 /dev/urandom)
		// may contain a newline: read such a file as one key, as before.
		if k, err := decodeKey(strings.TrimSpace(string(b))); err == nil {
			return [][]byte{k}, nil
		}
		return nil, errors.Join(errs...)
	}
	if len(keys) == 0 {
		return nil, errors.New("holds no key: write one per line, e.g. `openssl rand -base64 32 > key`")
	}
	if len(keys) > maxKeys {
		return nil, fmt.Errorf("holds %d keys, at most %d are allowed (a rotation needs two)", len(keys), maxKeys)
	}
	return keys, nil
}

// fingerprint names a key without revealing it: the first 8 hex digits of
// its SHA-256, enough to check that every agent encrypts with the same one.
func fingerprint(key []byte) string {
	sum := sha256.Sum256(key)
	return hex.EncodeToString(sum[:4])
}

// installKeys makes kr hold exactly keys, keys[0] encrypting. It adds the
// new keys before switching and removes the old ones after, so that at no
// point does kr lack a key a peer may still use.
func installKeys(kr *memberlist.Keyring, keys [][]byte) error {
	for _, k := range keys {
		if err := kr.AddKey(k); err != nil {
			return err
		}
	}
	if err := kr.UseKey(keys[0]); err != nil {
		return err
	}
	var old [][]byte
	for _, k := range kr.GetKeys() {
		if !slices.ContainsFunc(keys, func(o []byte) bool { return bytes.Equal(o, k) }) {
			old = append(old, slices.Clone(k))
		}
	}
	for _, k := range old {
		if err := kr.RemoveKey(k); err != nil {
			return err
		}
	}
	return nil
}

// Security is how this node's gossip is protected, for the status page.
type Security struct {
	// Encrypted is true when gossip is encrypted and authenticated with a key.
	Encrypted bool
	// Insecure is true when the node gossips without a key because the
	// operator said so (--cluster.insecure).
	Insecure bool
	// Keys is the number of keys in the keyring; the first encrypts.
	Keys int
	// Fingerprints name the keys (see fingerprint), the encrypting one first.
	Fingerprints []string
}

// Security reports how gossip is protected now.
func (n *Node) Security() Security {
	if n.keys == nil {
		return Security{Insecure: n.cfg.Insecure}
	}
	keys := n.keys.GetKeys()
	s := Security{Encrypted: len(keys) > 0, Keys: len(keys)}
	for _, k := range keys {
		s.Fingerprints = append(s.Fingerprints, fingerprint(k))
	}
	return s
}

// ReloadKeys re-reads --cluster.secret-key-file and installs its keyring:
// the first key encrypts from now on, and every key is accepted. A file that
// cannot be read or holds a bad key keeps the running keyring and returns an
// error. A node started without a key file has nothing to reload: encryption
// cannot be switched on while running. It is safe to call concurrently with
// Run, before or after it.
func (n *Node) ReloadKeys() error {
	if n.cfg.SecretKeyFile == "" || len(n.cfg.SecretKey) > 0 || n.keys == nil {
		return nil
	}
	n.keysMu.Lock()
	defer n.keysMu.Unlock()
	keys, err := readKeyFile(n.cfg.SecretKeyFile)
	if err == nil {
		err = installKeys(n.keys, keys)
	}
	if err != nil {
		n.logger.Error("reloading the gossip keyring failed, keeping the running keys", "err", err, "keys", len(n.keys.GetKeys()))
		return fmt.Errorf("reload gossip keyring: %w", err)
	}
	s := n.Security()
	n.logger.Info("gossip keyring loaded", "keys", s.Keys, "encrypts_with", s.Fingerprints[0], "fingerprints", strings.Join(s.Fingerprints, ","))
	return nil
}

// exposed returns the flag and address through which gossip can be reached
// from other hosts: a listen or advertise address that is not loopback.
func (c *Config) exposed() (flag, addr string, ok bool) {
	if host, _, err := splitHostPort(c.BindAddr); err == nil && !isLoopback(host) {
		return "--cluster.listen-address", c.BindAddr, true
	}
	if c.AdvertiseAddr != "" {
		if host, _, err := splitHostPort(c.AdvertiseAddr); err == nil && !isLoopback(host) {
			return "--cluster.advertise-address", c.AdvertiseAddr, true
		}
	}
	return "", "", false
}

// isLoopback reports whether host only reaches this machine. A wildcard or a
// name other than localhost counts as reachable.
func isLoopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
