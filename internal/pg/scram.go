package pg

import (
	"crypto/hmac"
	"crypto/pbkdf2"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
)

// scramIterations is Postgres's default scram_iterations.
const scramIterations = 4096

// ScramVerifier returns the SCRAM-SHA-256 verifier Postgres stores for
// password (RFC 5802, RFC 7677), in the form ALTER ROLE ... PASSWORD
// accepts: SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>. A
// password set this way never reaches the server in clear, so no statement
// log, error report or pg_stat_activity row can show it. The password must
// be printable ASCII, which SASLprep leaves as it is (GeneratePassword's
// are).
func ScramVerifier(password string) (string, error) {
	for i := 0; i < len(password); i++ {
		if password[i] < 0x21 || password[i] > 0x7e {
			return "", errors.New("scram: the password must be printable ASCII without spaces")
		}
	}
	salt := make([]byte, 16)
	if _, err := rand.Read(salt); err != nil {
		return "", fmt.Errorf("scram salt: %w", err)
	}
	return scramVerifier(password, salt, scramIterations)
}

func scramVerifier(password string, salt []byte, iterations int) (string, error) {
	salted, err := pbkdf2.Key(sha256.New, password, salt, iterations, sha256.Size)
	if err != nil {
		return "", err
	}
	clientKey := hmacSHA256(salted, "Client Key")
	storedKey := sha256.Sum256(clientKey)
	serverKey := hmacSHA256(salted, "Server Key")
	b64 := base64.StdEncoding.EncodeToString
	return fmt.Sprintf("SCRAM-SHA-256$%d:%s$%s:%s", iterations, b64(salt), b64(storedKey[:]), b64(serverKey)), nil
}

func hmacSHA256(key []byte, msg string) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(msg))
	return m.Sum(nil)
}
