package cluster

import (
	"strings"
	"testing"
)

func TestSettings(t *testing.T) {
	tests := []struct {
		name     string
		s        Settings
		addr     string
		shown    string
		tls      bool
		password string
		err      string
	}{
		{name: "host and default port", s: Settings{Host: "redis", Password: "pw"}, addr: "redis:6379", shown: "redis:6379", password: "pw"},
		{name: "host, port, TLS", s: Settings{Host: "redis", Port: 6380, TLS: true}, addr: "redis:6380", shown: "redis:6380", tls: true},
		{name: "url wins, password kept out of the log", s: Settings{URL: "redis://:secret@cache:7000/0", Host: "ignored"}, addr: "cache:7000", shown: "redis://cache:7000", password: "secret"},
		{name: "rediss is TLS", s: Settings{URL: "rediss://cache:7000"}, addr: "cache:7000", shown: "rediss://cache:7000", tls: true},
		{name: "password beside a url", s: Settings{URL: "redis://cache:7000", Password: "pw"}, addr: "cache:7000", shown: "redis://cache:7000", password: "pw"},
		{name: "bad url", s: Settings{URL: "http://cache"}, err: "redis_url"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o, err := tt.s.options()
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("err = %v, want one naming %s", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if o.Addr != tt.addr || (o.TLSConfig != nil) != tt.tls || o.Password != tt.password {
				t.Errorf("options: addr %s tls %v password %q", o.Addr, o.TLSConfig != nil, o.Password)
			}
			if got := tt.s.Address(); got != tt.shown || strings.Contains(got, "secret") {
				t.Errorf("Address() = %q, want %q", got, tt.shown)
			}
			if o.ReadTimeout > 500e6 || o.DialTimeout > 500e6 {
				t.Errorf("timeouts %v/%v: a dead Redis must be noticed fast", o.DialTimeout, o.ReadTimeout)
			}
		})
	}
	if (Settings{}).Enabled() {
		t.Error("empty settings enabled")
	}
}
