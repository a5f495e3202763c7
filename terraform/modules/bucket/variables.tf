variable "bucket_name" {
  description = "Name of the private bucket that holds the registry."
  type        = string

  validation {
    condition     = can(regex("^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$", var.bucket_name))
    error_message = "bucket_name must be 3 to 63 lowercase letters, digits, '.' or '-', starting and ending with a letter or digit."
  }
}

variable "registry_prefix" {
  description = "Key prefix the registry lives under (\"\" for the whole bucket), without leading or trailing slash; the same PREFIX as in `publish --bucket s3://BUCKET/PREFIX`."
  type        = string
  default     = ""

  validation {
    condition     = var.registry_prefix == "" || can(regex("^[A-Za-z0-9_-][A-Za-z0-9._-]*(/[A-Za-z0-9_-][A-Za-z0-9._-]*)*$", var.registry_prefix))
    error_message = "registry_prefix must be empty or slash-separated segments of ASCII letters, digits, '.', '_' or '-' (as publish accepts: no segment starting with '.', no leading or trailing slash)."
  }
}

variable "aws_only_resources" {
  description = "Create what only AWS S3 supports (public access block, ownership controls, lifecycle rules, bucket policy). false leaves the bucket, versioning and encryption: the subset an S3-compatible store such as MinIO accepts."
  type        = bool
  default     = true
}

variable "force_destroy" {
  description = "Let `terraform destroy` delete a bucket that still holds objects (every version). Keep false in production."
  type        = bool
  default     = false
}

variable "kms_key_arn" {
  description = "KMS key for SSE-KMS; null means SSE-S3 (AES256). The key policy must let cloudfront.amazonaws.com (for this distribution) and the publisher decrypt."
  type        = string
  default     = null

  validation {
    condition     = var.kms_key_arn == null || can(regex("^arn:aws[a-z-]*:kms:[a-z0-9-]+:[0-9]{12}:(key|alias)/.+$", var.kms_key_arn))
    error_message = "kms_key_arn must be a KMS key (or alias) ARN."
  }
}

variable "noncurrent_version_days" {
  description = "Days after which an overwritten or deleted object version (old catalogs, pruned image files) is expired for good."
  type        = number
  default     = 30

  validation {
    condition     = var.noncurrent_version_days >= 1 && floor(var.noncurrent_version_days) == var.noncurrent_version_days
    error_message = "noncurrent_version_days must be a whole number of days, at least 1."
  }
}

variable "cloudfront_distribution_arn" {
  description = "ARN of the CloudFront distribution allowed to read the registry (origin access control); null grants no read access."
  type        = string
  default     = null
}

variable "cloudfront_list_bucket" {
  description = "Also grant the distribution s3:ListBucket, so that a missing key is a 404 instead of a 403. The distribution's default root object keeps \"/\" from listing the bucket."
  type        = bool
  default     = false
}

variable "enforce_conditional_writes" {
  description = "Deny, for every principal, a PutObject (or multipart completion) on images/* without If-None-Match, and on streams/v1/* without If-Match or If-None-Match: image files can never be overwritten and no writer can blindly replace the catalog. `publish` always sends these headers."
  type        = bool
  default     = true
}

variable "tags" {
  description = "Tags for the bucket."
  type        = map(string)
  default     = {}
}
