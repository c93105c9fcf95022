package api

import (
	"fmt"

	"google.golang.org/protobuf/encoding/protowire"
)

// maxKnownFiles bounds GetSchemaRequest.known_files.
const maxKnownFiles = 1000

// withoutFiles returns the serialized FileDescriptorSet set without the
// files whose path is in known, by copying the bytes of the others (no
// decode, no re-encode: the cost is one scan of set). The set is the
// registry's own encoding, so a malformed one is an internal error.
func withoutFiles(set []byte, known []string) ([]byte, error) {
	if len(known) == 0 {
		return set, nil
	}
	skip := make(map[string]bool, len(known))
	for _, k := range known {
		skip[k] = true
	}
	out := make([]byte, 0, len(set))
	for rest := set; len(rest) > 0; {
		num, typ, n := protowire.ConsumeTag(rest)
		if n < 0 {
			return nil, fmt.Errorf("stored descriptor set: %w", protowire.ParseError(n))
		}
		size := protowire.ConsumeFieldValue(num, typ, rest[n:])
		if size < 0 {
			return nil, fmt.Errorf("stored descriptor set: %w", protowire.ParseError(size))
		}
		field := rest[:n+size]
		rest = rest[n+size:]
		if num == 1 && typ == protowire.BytesType { // FileDescriptorSet.file
			file, _ := protowire.ConsumeBytes(field[n:])
			if skip[fileName(file)] {
				continue
			}
		}
		out = append(out, field...)
	}
	return out, nil
}

// fileName is a serialized FileDescriptorProto's name (field 1), "" if it
// has none.
func fileName(file []byte) string {
	for len(file) > 0 {
		num, typ, n := protowire.ConsumeTag(file)
		if n < 0 {
			return ""
		}
		if num == 1 && typ == protowire.BytesType {
			name, m := protowire.ConsumeBytes(file[n:])
			if m < 0 {
				return ""
			}
			return string(name)
		}
		m := protowire.ConsumeFieldValue(num, typ, file[n:])
		if m < 0 {
			return ""
		}
		file = file[n+m:]
	}
	return ""
}
