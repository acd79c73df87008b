// A lego v5 peer for `npm run bench`, built from lego's own library packages.
//
// Why this exists: lego's CLI (`go install github.com/go-acme/lego/v5@v5.6.0`)
// imports every DNS provider, and this machine's Go module proxy refuses
// (403) several of those providers' SDKs, so the CLI cannot be built here.
// Its ACME code (lego/, certificate/, challenge/, registration/) and its
// webroot HTTP-01 provider need none of them. This program does what
// `lego --accept-tos --email E --server URL --http --http.webroot W --path P
// --key-type ec256 -d NAME run` does on that path: one account kept under
// --path and reused by every process, a new EC P-256 key per certificate,
// HTTP-01 through the webroot, the certificate and key written under
// --path/certificates. It takes the same flags, so the bench runs it exactly
// as it runs the lego CLI. Nothing else is implemented.
package main

import (
	"context"
	"crypto"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"

	"github.com/go-acme/lego/v5/acme"
	"github.com/go-acme/lego/v5/certcrypto"
	"github.com/go-acme/lego/v5/certificate"
	"github.com/go-acme/lego/v5/lego"
	"github.com/go-acme/lego/v5/providers/http/webroot"
	"github.com/go-acme/lego/v5/registration"
)

type user struct {
	email string
	reg   *acme.ExtendedAccount
	key   crypto.Signer
}

func (u *user) GetEmail() string                        { return u.email }
func (u *user) GetRegistration() *acme.ExtendedAccount { return u.reg }
func (u *user) GetPrivateKey() crypto.Signer            { return u.key }

type domains []string

func (d *domains) String() string     { return strings.Join(*d, ",") }
func (d *domains) Set(v string) error { *d = append(*d, v); return nil }

func legoVersion() string {
	if info, ok := debug.ReadBuildInfo(); ok {
		for _, dep := range info.Deps {
			if dep.Path == "github.com/go-acme/lego/v5" {
				return dep.Version
			}
		}
	}
	return "unknown"
}

func main() {
	fs := flag.NewFlagSet("lego", flag.ExitOnError)
	accept := fs.Bool("accept-tos", false, "accept the CA's terms of service")
	email := fs.String("email", "", "account e-mail")
	server := fs.String("server", "", "ACME directory URL")
	_ = fs.Bool("http", false, "use HTTP-01 (the only challenge here)")
	root := fs.String("http.webroot", "", "webroot for HTTP-01 tokens")
	dir := fs.String("path", ".lego", "where the account and certificates are kept")
	keyType := fs.String("key-type", "ec256", "certificate key type")
	version := fs.Bool("version", false, "print the version")
	var names domains
	fs.Var(&names, "d", "a domain (repeatable)")
	_ = fs.Parse(os.Args[1:])
	if *version {
		fmt.Printf("lego version %s (library build, devenv/lego-v5)\n", legoVersion())
		return
	}
	if fs.Arg(0) != "run" || len(names) == 0 || *server == "" || *root == "" || !*accept {
		fmt.Fprintln(os.Stderr, "usage: lego --accept-tos --email E --server URL --http --http.webroot DIR --path DIR [--key-type ec256] -d NAME run")
		os.Exit(2)
	}
	if err := run(*server, *email, *root, *dir, *keyType, names); err != nil {
		fmt.Fprintln(os.Stderr, "lego:", err)
		os.Exit(1)
	}
}

func run(server, email, root, dir, keyType string, names []string) error {
	ctx := context.Background()
	kt := certcrypto.KeyType(strings.ToUpper(keyType))
	u, err := loadUser(dir, email)
	if err != nil {
		return err
	}
	cfg := lego.NewConfig(u)
	cfg.CADirURL = server
	cfg.UserAgent = "acme-sidecar-bench lego-v5"
	client, err := lego.NewClient(cfg)
	if err != nil {
		return err
	}
	provider, err := webroot.NewHTTPProvider(root)
	if err != nil {
		return err
	}
	if err := client.Challenge.SetHTTP01Provider(provider); err != nil {
		return err
	}
	if u.reg == nil {
		reg, err := client.Registration.Register(ctx, registration.RegisterOptions{TermsOfServiceAgreed: true})
		if err != nil {
			return err
		}
		u.reg = reg
		if err := saveUser(dir, u); err != nil {
			return err
		}
	}
	res, err := client.Certificate.Obtain(ctx, certificate.ObtainRequest{Domains: names, KeyType: kt, Bundle: true})
	if err != nil {
		return err
	}
	certs := filepath.Join(dir, "certificates")
	if err := os.MkdirAll(certs, 0o700); err != nil {
		return err
	}
	base := filepath.Join(certs, strings.ReplaceAll(names[0], "*", "_"))
	if err := os.WriteFile(base+".crt", res.Certificate, 0o600); err != nil {
		return err
	}
	return os.WriteFile(base+".key", res.PrivateKey, 0o600)
}

// The account: accounts/account.key (PEM) and accounts/account.json, reused
// by every later process with the same --path, as lego's CLI does.
func loadUser(dir, email string) (*user, error) {
	accounts := filepath.Join(dir, "accounts")
	keyPEM, err := os.ReadFile(filepath.Join(accounts, "account.key"))
	if errors.Is(err, os.ErrNotExist) {
		key, err := certcrypto.GeneratePrivateKey(certcrypto.EC256)
		if err != nil {
			return nil, err
		}
		return &user{email: email, key: key}, nil
	}
	if err != nil {
		return nil, err
	}
	key, err := certcrypto.ParsePEMPrivateKey(keyPEM)
	if err != nil {
		return nil, err
	}
	u := &user{email: email, key: key}
	raw, err := os.ReadFile(filepath.Join(accounts, "account.json"))
	if err == nil {
		var reg acme.ExtendedAccount
		if err := json.Unmarshal(raw, &reg); err != nil {
			return nil, err
		}
		u.reg = &reg
	}
	return u, nil
}

func saveUser(dir string, u *user) error {
	accounts := filepath.Join(dir, "accounts")
	if err := os.MkdirAll(accounts, 0o700); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(accounts, "account.key"), certcrypto.PEMEncode(u.key), 0o600); err != nil {
		return err
	}
	raw, err := json.Marshal(u.reg)
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(accounts, "account.json"), raw, 0o600)
}
