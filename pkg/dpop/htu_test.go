package dpop

import "testing"

// Kong's own examples (kong/pdk/request.lua, kong/tools/uri.lua) and the
// RFC 3986 §5.4 dot-segment cases: the path as kong.request.get_path gives
// it to the plugins.
func TestNormalizePathIsKongs(t *testing.T) {
	tests := map[string]string{
		"":  "",
		"/": "/",
		"/t/Abc%20123%C3%B8%2f/parent/..//test/./": "/t/Abc 123\xc3\xb8%2F/test/",
		"/v1/chat/completions":                     "/v1/chat/completions",
		"/v1/%63hat":                               "/v1/chat",
		"/v1/%2e%2e/admin":                         "/admin",
		"/a/b/c/./../../g":                         "/a/g",
		"/a//b///c":                                "/a/b/c",
		"/a/%2F/b":                                 "/a/%2F/b",
		"/a/%2f%3a%40":                             "/a/%2F%3A%40",
		"/a/%25":                                   "/a/%25",
		"/a/%zz":                                   "/a/%zz",
		"/a/%4":                                    "/a/%4",
		"/..":                                      "/",
		"/../../x":                                 "/x",
		"/a/.":                                     "/a/",
		"/a/..":                                    "/",
		"/~user/%7Euser":                           "/~user/~user",
	}
	for in, want := range tests {
		if got := NormalizePath(in); got != want {
			t.Errorf("NormalizePath(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestSameURL(t *testing.T) {
	base := "https://api.example.com/v1/chat/completions"
	same := []string{
		base,
		"https://api.example.com/v1/chat/completions?stream=1",
		"https://api.example.com/v1/chat/completions#x",
		"HTTPS://API.EXAMPLE.COM/v1/chat/completions",
		"https://api.example.com:443/v1/chat/completions",
		"https://api.example.com/v1/./chat/completions",
		"https://api.example.com/v1//chat/completions",
		"https://api.example.com/v1/%63hat/completions",
	}
	for _, u := range same {
		if !SameURL(u, base) {
			t.Errorf("%q should match %q", u, base)
		}
	}
	different := []string{
		"http://api.example.com/v1/chat/completions",
		"https://api.example.com:8443/v1/chat/completions",
		"https://api.example.com./v1/chat/completions",
		"https://other.example.com/v1/chat/completions",
		"https://api.example.com/v1/chat/completions/",
		"https://api.example.com/v1/Chat/completions",
		"https://api.example.com/v1/chat%2Fcompletions",
		"https://user@api.example.com/v1/chat/completions",
		"//api.example.com/v1/chat/completions",
		"/v1/chat/completions",
		"ftp://api.example.com/v1/chat/completions",
		"https:api.example.com/v1/chat/completions",
		"",
		"https://api.example.com/v1/chat/completions\x00",
		"https://api.example.com\x00/v1/chat/completions",
		"https://api.example.com:99999/v1/chat/completions",
		"https://api.example.com:-1/v1/chat/completions",
		"https://[fe80::1%25eth0]/v1/chat/completions",
	}
	for _, u := range different {
		if SameURL(u, base) {
			t.Errorf("%q should not match %q", u, base)
		}
	}
	if !SameURL("http://[::1]:8000/x", "http://[::1]:8000/x") || SameURL("http://[::1]/x", "http://[::1]:8000/x") {
		t.Error("IPv6 hosts")
	}
	if !SameURL("http://localhost/", "http://localhost") {
		t.Error("an empty path is /")
	}
	// the request side's path is Kong's, already normalised: decoded, not
	// normalised again
	if !SameURL("https://h/t/Abc%20123%C3%B8%2f/parent/..//test/./", "https://h/t/Abc 123\xc3\xb8%2F/test/") {
		t.Error("Kong's decoded path")
	}
	if !SameURL("https://h/%%32%65", "https://h/%2e") || SameURL("https://h/%%32%65", "https://h/") {
		t.Error("Kong's path is compared as Kong made it")
	}
}
