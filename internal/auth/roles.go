package auth

import (
	"fmt"
	"path"
	"slices"
	"strings"
)

// Permission is one thing a caller may do. The API edge names the
// permission each RPC needs (api's access table); a role is a set of them.
type Permission string

// The permissions. They are few on purpose: each is a question an
// operator asks ("who may register?"), not one per RPC.
const (
	PermSchemaRead     Permission = "schema.read"     // get schemas, list subjects and versions, read a subject's config
	PermSchemaCheck    Permission = "schema.check"    // check a schema's compatibility
	PermSchemaRegister Permission = "schema.register" // register a schema version
	PermSchemaAdmin    Permission = "schema.admin"    // change a subject's compatibility, delete versions
	PermPublish        Permission = "events.publish"  // publish events
	PermRefusedRead    Permission = "events.refused"  // list refused events (without payloads)
	PermPayloadRead    Permission = "events.payloads" // see the payloads of refused events
	PermStatsRead      Permission = "stats.read"      // subject stats, topics, sinks, status, metrics
	PermRoutesRead     Permission = "routes.read"     // list routes
	PermRoutesAdmin    Permission = "routes.admin"    // create and delete routes
	PermDescribe       Permission = "api.describe"    // server reflection, and who the caller is (WhoAmI)
	PermAuditRead      Permission = "audit.read"      // read the audit log of control-plane changes
	PermSinksAdmin     Permission = "sinks.admin"     // replay a sink, emptying its tables when asked
)

// The roles.
const (
	RoleAdmin     = "admin"
	RoleRegistrar = "registrar"
	RoleProducer  = "producer"
	RoleViewer    = "viewer"
)

// roles is what each role may do (the table of roles). An admin
// may do everything, so its row is every permission.
var roles = map[string][]Permission{
	RoleAdmin: {PermSchemaRead, PermSchemaCheck, PermSchemaRegister, PermSchemaAdmin, PermPublish,
		PermRefusedRead, PermPayloadRead, PermStatsRead, PermRoutesRead, PermRoutesAdmin, PermDescribe, PermAuditRead, PermSinksAdmin},
	RoleRegistrar: {PermSchemaRead, PermSchemaCheck, PermSchemaRegister, PermDescribe},
	RoleProducer:  {PermSchemaRead, PermPublish, PermDescribe},
	RoleViewer:    {PermSchemaRead, PermRefusedRead, PermStatsRead, PermRoutesRead, PermDescribe, PermAuditRead},
}

// Roles lists the role names, for messages.
func Roles() []string { return []string{RoleAdmin, RoleRegistrar, RoleProducer, RoleViewer} }

// Permissions lists what role may do.
func Permissions(role string) []Permission { return slices.Clone(roles[role]) }

// RoleAllows reports whether role has perm.
func RoleAllows(role string, perm Permission) bool { return slices.Contains(roles[role], perm) }

// CheckRole says why role and subject patterns cannot be an identity's.
// An admin may do everything, for every subject, so subject patterns on
// an admin are refused rather than half applied (routes, for one, are
// deleted by name, not by subject).
func CheckRole(role string, subjects []string) error {
	if _, ok := roles[role]; !ok {
		return fmt.Errorf("role %q: use one of %s", role, strings.Join(Roles(), ", "))
	}
	if role == RoleAdmin && len(subjects) > 0 {
		return fmt.Errorf("role admin covers every subject; subjects %q would not restrict it: give the caller another role", subjects)
	}
	for _, p := range subjects {
		if p == "" {
			return fmt.Errorf("subject pattern is empty")
		}
		if _, err := path.Match(p, ""); err != nil {
			return fmt.Errorf("subject pattern %q: %w", p, err)
		}
	}
	return nil
}

// Can reports whether the identity's role has perm.
func (id Identity) Can(perm Permission) bool { return RoleAllows(id.Role, perm) }

// Covers reports whether subject matches one of the identity's subject
// patterns (glob syntax of path.Match: '*', '?', '[...]'); no patterns
// cover every subject.
func (id Identity) Covers(subject string) bool {
	if len(id.Subjects) == 0 {
		return true
	}
	for _, p := range id.Subjects {
		if ok, _ := path.Match(p, subject); ok {
			return true
		}
	}
	return false
}

// Check returns nil when id's role has perm, else a *DeniedError.
func (id Identity) Check(perm Permission) error {
	if !id.Can(perm) {
		return &DeniedError{Name: id.Name, Role: id.Role, Permission: perm}
	}
	return nil
}

// CheckSubject returns nil when id may do perm on subject, else a
// *DeniedError. An identity limited to some subjects must name one: an
// empty subject is refused.
func (id Identity) CheckSubject(perm Permission, subject string) error {
	if err := id.Check(perm); err != nil {
		return err
	}
	if !id.Covers(subject) {
		return &DeniedError{Name: id.Name, Role: id.Role, Permission: perm, Subject: subject, Limited: true}
	}
	return nil
}
