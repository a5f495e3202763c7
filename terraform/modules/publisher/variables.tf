variable "name" {
  description = "Name prefix of the IAM policies and roles."
  type        = string

  validation {
    condition     = can(regex("^[a-zA-Z0-9+=,.@_-]{1,48}$", var.name))
    error_message = "name must be 1 to 48 characters allowed in IAM names."
  }
}

variable "bucket_arn" {
  description = "ARN of the registry bucket."
  type        = string
}

variable "registry_prefix" {
  description = "Key prefix the registry lives under (\"\" for the whole bucket)."
  type        = string
  default     = ""

  validation {
    condition     = var.registry_prefix == "" || can(regex("^[A-Za-z0-9_-][A-Za-z0-9._-]*(/[A-Za-z0-9_-][A-Za-z0-9._-]*)*$", var.registry_prefix))
    error_message = "registry_prefix must be empty or slash-separated segments of ASCII letters, digits, '.', '_' or '-' (as publish accepts: no segment starting with '.', no leading or trailing slash)."
  }
}

variable "distribution_arn" {
  description = "CloudFront distribution the roles may invalidate (publish --cloudfront-distribution); null grants no CloudFront access."
  type        = string
  default     = null
}

variable "kms_key_arn" {
  description = "The bucket's KMS key when it uses SSE-KMS: the roles get kms:GenerateDataKey and kms:Decrypt on it."
  type        = string
  default     = null
}

variable "publisher_principals" {
  description = <<-EOT
    Who may assume the publisher role: AWS principal ARNs (accounts, roles, users) and/or a GitHub
    Actions OIDC provider with the allowed token subjects (e.g. "repo:ORG/REPO:ref:refs/heads/main").
    null creates the policies but no role.
  EOT
  type = object({
    aws_arns                 = optional(list(string), [])
    github_oidc_provider_arn = optional(string)
    github_subjects          = optional(list(string), [])
  })
  default = null

  validation {
    condition = var.publisher_principals == null ? true : (
      length(var.publisher_principals.aws_arns) > 0 ||
      (var.publisher_principals.github_oidc_provider_arn != null && length(var.publisher_principals.github_subjects) > 0)
    )
    error_message = "publisher_principals needs aws_arns, or github_oidc_provider_arn with github_subjects."
  }

  validation {
    condition = alltrue([
      for s in try(var.publisher_principals.github_subjects, []) : can(regex("^repo:[^/*]+/[^/*:]+:.+$", s))
    ])
    error_message = "Each github_subjects entry must name one repository: repo:ORG/REPO:ref:refs/heads/BRANCH, repo:ORG/REPO:environment:NAME, ... (no wildcard in ORG/REPO)."
  }
}

variable "prune_principals" {
  description = "Who may assume the prune role (same shape as publisher_principals); null means the same principals as the publisher role."
  type = object({
    aws_arns                 = optional(list(string), [])
    github_oidc_provider_arn = optional(string)
    github_subjects          = optional(list(string), [])
  })
  default = null

  validation {
    condition = var.prune_principals == null ? true : (
      length(var.prune_principals.aws_arns) > 0 ||
      (var.prune_principals.github_oidc_provider_arn != null && length(var.prune_principals.github_subjects) > 0)
    )
    error_message = "prune_principals needs aws_arns, or github_oidc_provider_arn with github_subjects."
  }

  validation {
    condition = alltrue([
      for s in try(var.prune_principals.github_subjects, []) : can(regex("^repo:[^/*]+/[^/*:]+:.+$", s))
    ])
    error_message = "Each github_subjects entry must name one repository: repo:ORG/REPO:ref:refs/heads/BRANCH, repo:ORG/REPO:environment:NAME, ... (no wildcard in ORG/REPO)."
  }
}

variable "permissions_boundary_arn" {
  description = "Permissions boundary for the roles, if your account requires one."
  type        = string
  default     = null
}

variable "tags" {
  description = "Tags for the policies and roles."
  type        = map(string)
  default     = {}
}
