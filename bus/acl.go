package bus

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/segmentio/kafka-go"
)

// ACL allows one principal one operation on a topic or a consumer group
// (by exact name, or on every name with a prefix), from any host.
type ACL struct {
	// Principal as Kafka names it, e.g. "User:earshot-ingest".
	Principal string
	// Group: the resource is a consumer group; otherwise a topic.
	Group bool
	// Name of the resource, or its prefix when Prefixed.
	Name     string
	Prefixed bool
	// Operation is one of the Op constants.
	Operation Op
}

// Op is an operation an ACL allows.
type Op string

// The operations Earshot's principals need. Read and Write imply Describe.
const (
	OpRead            Op = "READ"
	OpWrite           Op = "WRITE"
	OpDescribe        Op = "DESCRIBE"
	OpDescribeConfigs Op = "DESCRIBE_CONFIGS"
	OpAlterConfigs    Op = "ALTER_CONFIGS"
)

var ops = map[Op]kafka.ACLOperationType{
	OpRead: kafka.ACLOperationTypeRead, OpWrite: kafka.ACLOperationTypeWrite, OpDescribe: kafka.ACLOperationTypeDescribe,
	OpDescribeConfigs: kafka.ACLOperationTypeDescribeConfigs, OpAlterConfigs: kafka.ACLOperationTypeAlterConfigs,
}

// String is the ACL as one line, as `earshot kafka acls` prints it.
func (a ACL) String() string {
	kind, pattern := "topic", "literal"
	if a.Group {
		kind = "group"
	}
	if a.Prefixed {
		pattern = "prefixed"
	}
	return fmt.Sprintf("allow %s %s %s %s %s", a.Principal, a.Operation, kind, pattern, a.Name)
}

func (a ACL) entry() (kafka.ACLEntry, error) {
	op, ok := ops[a.Operation]
	if !ok {
		return kafka.ACLEntry{}, fmt.Errorf("unknown operation %q", a.Operation)
	}
	if !strings.HasPrefix(a.Principal, "User:") || a.Name == "" {
		return kafka.ACLEntry{}, fmt.Errorf("ACL %s: needs a User: principal and a resource name", a)
	}
	e := kafka.ACLEntry{ResourceType: kafka.ResourceTypeTopic, ResourceName: a.Name, ResourcePatternType: kafka.PatternTypeLiteral,
		Principal: a.Principal, Host: "*", Operation: op, PermissionType: kafka.ACLPermissionTypeAllow}
	if a.Group {
		e.ResourceType = kafka.ResourceTypeGroup
	}
	if a.Prefixed {
		e.ResourcePatternType = kafka.PatternTypePrefixed
	}
	return e, nil
}

// CreateACLs adds acls to the cluster (an ACL that exists already is no
// error: creating is idempotent) and returns once the brokers describe
// them, so a principal started next is not refused. cl must authenticate as a principal that
// may alter the cluster's ACLs (a super user). Brokers without an
// authorizer refuse with ErrNotAllowed.
func CreateACLs(ctx context.Context, cl Cluster, acls []ACL) error {
	if len(acls) == 0 {
		return nil
	}
	req := &kafka.CreateACLsRequest{}
	for _, a := range acls {
		e, err := a.entry()
		if err != nil {
			return fmt.Errorf("bus: create ACLs: %w", err)
		}
		req.ACLs = append(req.ACLs, e)
	}
	c, done, err := adminClient(cl)
	if err != nil {
		return fmt.Errorf("bus: create ACLs: %w", err)
	}
	defer done()
	if err := preflight(ctx, c, cl); err != nil {
		return fmt.Errorf("bus: create ACLs: %w", err)
	}
	res, err := c.CreateACLs(ctx, req)
	if err != nil {
		return fmt.Errorf("bus: create ACLs via brokers %s: %w", cl, classify(cl.refused(err, "alter ACLs of", "the cluster")))
	}
	var errs []error
	for i, e := range res.Errors {
		if e != nil && i < len(acls) {
			errs = append(errs, fmt.Errorf("%s: %w", acls[i], classify(e)))
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("bus: create ACLs via brokers %s: %w", cl, errors.Join(errs...))
	}
	if err := waitACLs(ctx, c, req.ACLs); err != nil {
		return fmt.Errorf("bus: create ACLs via brokers %s: %w", cl, err)
	}
	return nil
}

// waitACLs returns once the broker answering describes every entry: the
// controller accepts ACLs before the brokers' authorizers apply them (a
// principal that starts right after CreateACLs was refused for a moment).
func waitACLs(ctx context.Context, c *kafka.Client, want []kafka.ACLEntry) error {
	all := &kafka.DescribeACLsRequest{Filter: kafka.ACLFilter{ResourceTypeFilter: kafka.ResourceTypeAny,
		ResourcePatternTypeFilter: kafka.PatternTypeAny, Operation: kafka.ACLOperationTypeAny, PermissionType: kafka.ACLPermissionTypeAny}}
	for {
		res, err := c.DescribeACLs(ctx, all)
		if err == nil && res.Error != nil {
			err = res.Error
		}
		missing := len(want)
		if err == nil {
			missing = 0
			for _, w := range want {
				if !described(res.Resources, w) {
					missing++
				}
			}
			if missing == 0 {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for the brokers to apply the ACLs (%d not yet described, last error %v): %w", missing, err, ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func described(res []kafka.ACLResource, w kafka.ACLEntry) bool {
	for _, r := range res {
		if r.ResourceType != w.ResourceType || r.ResourceName != w.ResourceName || r.PatternType != w.ResourcePatternType {
			continue
		}
		for _, d := range r.ACLs {
			if d.Principal == w.Principal && d.Operation == w.Operation && d.PermissionType == w.PermissionType && d.Host == w.Host {
				return true
			}
		}
	}
	return false
}
