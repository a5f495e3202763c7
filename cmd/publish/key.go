package main

// keyCmd groups the signing key commands.
type keyCmd struct {
	Generate keyGenerateCmd `cmd:"" help:"Make an OpenPGP signing key for the registry's signed catalog: the secret key goes to FILE (mode 0600), the fingerprint to stdout."`
	Export   keyExportCmd   `cmd:"" help:"Print the public key of the signing key, for verifiers' keyrings (--binary: the form gpgv reads)."`
}

// defaultKeyFile is where key generate writes and key export reads by
// default; .gitignore ignores the folder.
const defaultKeyFile = "keys/signing-key.asc"
